// The deliberate bugs `deno task mutants` applies, one at a time. Each breaks one rule the product relies
// on; `tests` are the test files that must catch it (and `filter`, a test name to narrow them to).
// `find` must occur exactly once in `file`: when the code moves, the mutant reports itself as not
// applicable and this list is updated with it.

/** One deliberate bug. */
export interface Mutant {
  /** Short unique name. */
  id: string;
  /** The rule the bug breaks, as the report says it. */
  rule: string;
  /** Path from the repository root. */
  file: string;
  /** Exact text to replace (once). */
  find: string;
  replace: string;
  /** Test files, from the repository root, that must fail with the bug in place. */
  tests: string[];
  /** Runs only tests whose name contains this. */
  filter?: string;
}

/** Every mutant, grouped by the rule's area. */
export const MUTANTS: Mutant[] = [
  // -- the sequenced channel (resume) --
  {
    id: "replay-duplicate",
    rule: "a replayed frame already received is dropped, not delivered again",
    file: "lib/protocol/sequenced_channel.ts",
    find: 'seq <= this.#last) return "duplicate";',
    replace: 'seq < this.#last) return "duplicate";',
    tests: ["tests/protocol/sequenced_channel_test.ts"],
  },
  {
    id: "replay-gap",
    rule: "a frame after a missing one is reported as a gap",
    file: "lib/protocol/sequenced_channel.ts",
    find: 'if (seq !== this.#last + 1) return "gap";',
    replace: "",
    tests: ["tests/protocol/sequenced_channel_test.ts"],
  },
  {
    id: "replay-ack-bounds",
    rule: "an ack beyond what was sent is clamped, so unsent frames are never forgotten",
    file: "lib/protocol/sequenced_channel.ts",
    find: "const upTo = Math.min(seq, this.#lastSeq);",
    replace: "const upTo = seq;",
    tests: ["tests/protocol/sequenced_channel_test.ts"],
  },
  {
    id: "replay-overflow",
    rule: "the replay buffer holds at most its byte bound, then marks the session unresumable",
    file: "lib/protocol/sequenced_channel.ts",
    find: "this.#size + frame.size > this.#limits.maxBytes",
    replace: "false",
    tests: ["tests/protocol/sequenced_channel_test.ts", "tests/serve/resume_test.ts"],
  },
  {
    id: "resume-wrong-owner",
    rule: "a session is resumed only by a token of its own owner",
    file: "lib/serve/tunnel_session.ts",
    find: 'if (link.owner !== this.owner) return "wrong-owner";',
    replace: "",
    tests: ["tests/serve/resume_test.ts"],
    filter: "stranger",
  },
  {
    id: "resume-secret",
    rule: "a session is resumed only with its resume secret",
    file: "lib/serve/tunnel_session.ts",
    find: 'if (!this.matchesToken(request.token)) return "bad-token";',
    replace: "",
    tests: ["tests/serve/resume_test.ts"],
    filter: "stranger",
  },
  {
    id: "serve-duplicate-drop",
    rule: "serve drops a data frame the client replays after a resume",
    file: "lib/serve/tunnel_session.ts",
    find: 'if (acceptance === "new") return true;',
    replace: 'if (acceptance !== "gap") return true;',
    tests: ["tests/serve/sequence_test.ts"],
    filter: "replayed",
  },
  {
    id: "serve-gap",
    rule: "serve drops the link on a sequence gap so that the client resumes",
    file: "lib/serve/tunnel_session.ts",
    find: 'this.#link?.close(CloseCode.GoingAway, "sequence gap");',
    replace: "",
    tests: ["tests/serve/sequence_test.ts"],
    filter: "gap",
  },
  {
    id: "serve-bad-ack",
    rule: "a resume that acknowledges frames never sent is refused, not granted",
    file: "lib/serve/session_sequence.ts",
    find: "const frames = channel.replayAfter(ack);",
    replace: "const frames = channel.replayAfter(Math.min(ack, channel.out.lastSeq));",
    tests: ["tests/serve/sequence_test.ts"],
    filter: "bad-ack",
  },
  {
    id: "mcp-session-cap",
    rule: "an owner past its MCP session cap with no idle session is refused (429)",
    file: "lib/serve/mcp_client_session.ts",
    find: "if (oldest === undefined) return undefined;",
    replace: "",
    tests: ["tests/serve/mcp_lifecycle_test.ts"],
    filter: "maxMcpSessionsPerOwner",
  },
  {
    id: "streams-per-token",
    rule: "one token holds at most --max-streams-per-token GET streams",
    file: "lib/serve/mcp_streams.ts",
    find:
      "if (replacing || (this.#streamsByCredential.get(credential) ?? 0) < limit) return undefined;",
    replace: "if (true) return undefined;",
    tests: ["tests/serve/fairness_test.ts"],
  },
  {
    id: "unknown-id-bad-frame",
    rule: "an answer for an id never asked counts as a bad frame",
    file: "lib/serve/tunnel_calls.ts",
    find: 'this.#channel.badFrame("Response for an id that was never asked");',
    replace: "",
    tests: ["tests/serve/tunnel_session_test.ts"],
    filter: "never asked",
  },
  {
    id: "heartbeat-ack-taken",
    rule: "serve takes the ack a heartbeat carries, so a quiet session's replay buffer is freed",
    file: "lib/serve/tunnel_link.ts",
    find: "if (frame.ack !== undefined) session?.peerAcked(frame.ack);",
    replace: "",
    tests: ["tests/serve/sequence_test.ts"],
    filter: "heartbeat's ack",
  },
  {
    id: "channels-routing",
    rule: "a frame on a link with channels reaches the session of its channel",
    file: "lib/serve/tunnel_link.ts",
    find:
      'const session = this.#sessions.get(frame.channel ?? "");\n        if (session === undefined) {',
    replace:
      "const session = [...this.#sessions.values()][0];\n        if (session === undefined) {",
    tests: ["tests/serve/channels_test.ts"],
  },
  {
    id: "memory-frames",
    rule: "a frame being received is charged against its owner's memory share from its header",
    file: "lib/serve/tunnel_link.ts",
    find: "onFrameStart: (bytes) => this.#receiving?.resize(bytes) ?? true,",
    replace: "onFrameStart: () => true,",
    tests: ["tests/serve/memory_share_test.ts"],
    filter: "frames being received",
  },
  {
    id: "memory-replay",
    rule: "a replay buffer past its owner's memory share stops being kept",
    file: "lib/serve/session_sequence.ts",
    find: "if (this.#charge.resize(out.size)) return true;",
    replace: "return true;",
    tests: ["tests/serve/memory_share_test.ts"],
    filter: "replay buffer",
  },
  {
    id: "memory-owner-isolation",
    rule: "room for one owner is never made by cutting another owner's holders",
    file: "lib/serve/memory_budget.ts",
    find: "const victims = [...(this.#charges.get(owner) ?? [])]",
    replace: "const victims = [...this.#charges.values()].flatMap((set) => [...set])",
    tests: ["tests/serve/memory_budget_test.ts"],
  },
  // -- liveness and limits --
  {
    id: "heartbeat-deadline",
    rule: "a link without any frame within the deadline after a heartbeat is declared dead",
    file: "lib/connect/link_heartbeat.ts",
    find: "now - this.#sentAt >= deadlineMs",
    replace: "now - this.#sentAt >= deadlineMs * 1000",
    tests: ["tests/connect/link_test.ts"],
    filter: "heartbeat",
  },
  {
    id: "frame-size-limit",
    rule:
      "serve refuses a frame over --max-frame-bytes at its header, saying the size and the limit",
    file: "lib/serve/http/ws_peer_socket.ts",
    find: "if (bytes > maxFrameBytes) {",
    replace: "if (bytes > maxFrameBytes * 1000) {",
    tests: ["tests/serve/http/ws_peer_socket_test.ts"],
    filter: "over the limit",
  },
  {
    id: "body-limit",
    rule: "an HTTP body over the limit is refused while it is read",
    file: "lib/serve/request_body.ts",
    find: "if (bytes > limit) {",
    replace: "if (false) {",
    tests: ["tests/serve/request_body_test.ts"],
  },
  // -- authentication and isolation --
  {
    id: "auth-401-vs-403",
    rule: "a valid token without the role gets 403, not 401",
    file: "lib/serve/auth_challenge.ts",
    find: "{ status: 403 },",
    replace: "{ status: 401 },",
    tests: ["tests/serve/tunnel_session_test.ts"],
    filter: "401",
  },
  {
    id: "owner-isolation-mcp",
    rule: "an MCP client reaches only sessions of its own owner",
    file: "lib/serve/mcp_endpoint.ts",
    find: "session.owner !== identity.owner ||",
    replace: "",
    tests: ["tests/serve/mcp_endpoint_test.ts"],
    filter: "own owner",
  },
  {
    id: "owner-isolation-sessions-api",
    rule: "the sessions API shows and acts only on an owner's own sessions (admins excepted)",
    file: "lib/serve/sessions_api.ts",
    find: 'if (link.owner !== identity.owner && !identity.roles.has("admin")) {',
    replace: "if (false) {",
    tests: ["tests/serve/sessions_api_test.ts"],
  },
  {
    id: "resume-secret-compare",
    rule: "a resume secret matches only itself",
    file: "lib/serve/resume_credentials.ts",
    find: "return diff === 0 && expected.length > 0;",
    replace: "return expected.length > 0;",
    tests: ["tests/serve/resume_credentials_test.ts"],
  },
  // -- MCP clients: queue, resumable streams, abandoned calls, legacy SSE --
  {
    id: "queue-not-refusal",
    rule: "calls past --max-inflight wait in the queue instead of being refused",
    file: "lib/serve/tunnel_calls.ts",
    find: "if (this.#queue.full) {",
    replace: "if (true) {",
    tests: ["tests/serve/call_queue_test.ts"],
    filter: "burst",
  },
  {
    id: "resume-replays-all",
    rule: "a stream resumed with Last-Event-ID gets every event after that id",
    file: "lib/serve/resumable_stream.ts",
    find: "if (event.seq > from && !connection.write(event.chunk)) break;",
    replace: "if (event.seq > from + 1 && !connection.write(event.chunk)) break;",
    tests: ["tests/serve/stream_resume_test.ts"],
    filter: "POST stream cut",
  },
  {
    id: "abandoned-stream-cancelled",
    rule: "a call whose stream nobody resumed within the window is cancelled at the server",
    file: "lib/serve/resumable_stream.ts",
    find: "      this.onExpired?.();",
    replace: "",
    tests: ["tests/serve/abandoned_calls_test.ts"],
    filter: "resume-window",
  },
  {
    id: "json-call-cancelled-on-disconnect",
    rule: "a call answered as plain JSON is cancelled when its client disconnects",
    file: "lib/serve/mcp_endpoint.ts",
    find: 'else clientGone?.addEventListener("abort", gone, { once: true });',
    replace: "",
    tests: ["tests/serve/abandoned_calls_test.ts"],
    filter: "plain JSON",
  },
  {
    id: "legacy-close-ends-session",
    rule: "a legacy SSE connection that closes ends its session and cancels its calls",
    file: "lib/serve/legacy_sse.ts",
    find: 'connection.onCancel = () => end("the client closed its SSE connection");',
    replace: "",
    tests: ["tests/serve/legacy_sse_test.ts"],
    filter: "closing a legacy",
  },
  // -- routing --
  {
    id: "id-rewriting",
    rule: "every call gets a tunnel id of its own, so clients with the same ids never cross",
    file: "lib/serve/call_table.ts",
    find: "let message: JsonRpcRequest = { ...request, id: tunnelId };",
    replace: "let message: JsonRpcRequest = { ...request };",
    tests: ["tests/serve/mcp_endpoint_test.ts"],
    filter: "overlapping ids",
  },
  {
    id: "progress-token-routing",
    rule: "a call's progress token is rewritten so its progress reaches only its caller",
    file: "lib/serve/call_table.ts",
    find: "params: { ...params, _meta: { ...params._meta, progressToken: tunnelId } },",
    replace: "params,",
    tests: ["tests/serve/mcp_endpoint_test.ts"],
    filter: "progress",
  },
  {
    id: "cancellation",
    rule: "a call its client cancels is cancelled on the server (notifications/cancelled)",
    file: "lib/serve/tunnel_calls.ts",
    find: "this.#sendCancel(entry.tunnelId, reasonText(signal?.reason));",
    replace: "",
    tests: ["tests/serve/mcp_endpoint_test.ts"],
    filter: "cancellation",
  },
  {
    id: "heartbeat-no-echo",
    rule:
      "a gateway heartbeat is never answered with a heartbeat (the storm of the reference client)",
    file: "lib/connect/link.ts",
    find: "        return this.#heartbeat.reply();",
    replace: "        this.#sendHeartbeat();\n        return this.#heartbeat.reply();",
    tests: ["tests/connect/link_test.ts"],
    filter: "never answers",
  },
  // -- exits and secrets --
  {
    id: "exit-code-auth",
    rule: "a refused token exits with code 3 (do not restart)",
    file: "main.ts",
    find: "return ExitCode.AuthRefused;",
    replace: "return ExitCode.Failure;",
    tests: ["tests/e2e/connect_test.ts"],
    filter: "exits with code 3",
  },
  {
    id: "exit-code-evicted",
    rule: "an evicted session exits with code 4 (do not restart)",
    file: "main.ts",
    find: "return ExitCode.Evicted;",
    replace: "return ExitCode.Failure;",
    tests: ["tests/e2e/connect_serve_test.ts"],
    filter: "evicts connect",
  },
  {
    id: "cli-token-hidden",
    rule: "a bad token value is named but never shown in a CLI message",
    file: "lib/util/errors.ts",
    find: 'if (secret) head += " (value hidden)";',
    replace: 'if (false) head += " (value hidden)";',
    tests: ["tests/connect/config_test.ts", "tests/util/errors_test.ts"],
  },
  // -- serve's flags reach the running gateway --
  {
    id: "serve-public-url-wiring",
    rule: "--public-url builds the mcpUrl that register_ack hands out",
    file: "lib/serve/command.ts",
    find: "...(settings.publicUrl === undefined ? {} : { publicUrl: settings.publicUrl }),",
    replace: "",
    tests: ["tests/e2e/serve_flags_test.ts"],
    filter: "public-url",
  },
  {
    id: "serve-jwt-audience-wiring",
    rule: "--jwt-audience is enforced by the running serve",
    file: "lib/serve/command.ts",
    find: "...(settings.jwtAudience === undefined ? {} : { audience: settings.jwtAudience }),",
    replace: "",
    tests: ["tests/e2e/serve_flags_test.ts"],
    filter: "MCP_RPROXY_JWT_SECRET",
  },
  {
    id: "serve-log-env-wiring",
    rule: "MCP_RPROXY_LOG_LEVEL sets serve's log level when --log-level is absent",
    file: "lib/serve/config.ts",
    find: "name: LOG_LEVEL_ENV",
    replace: 'name: "MCP_RPROXY_LOG_LEVEL_UNREAD"',
    tests: ["tests/e2e/serve_flags_test.ts"],
    filter: "MCP_RPROXY_LOG_LEVEL",
  },
  {
    id: "url-credentials-redaction",
    rule: "credentials in a gateway URL are never repeated in a message",
    file: "lib/connect/link_url.ts",
    find: '"$1***@"',
    replace: '"$&"',
    tests: ["tests/connect/link_url_test.ts"],
  },
  {
    id: "frame-error-no-quote",
    rule: "a malformed frame's error never quotes the frame (it may carry credentials)",
    file: "lib/protocol/frames.ts",
    find: "return syntaxError(/position (\\d+)/.exec((error as Error).message)?.[1]);",
    replace: "return new SyntaxError((error as Error).message);",
    tests: ["tests/protocol/frames_test.ts"],
  },
  // -- many servers --
  {
    id: "reload-touches-unchanged",
    rule: "a reload leaves a server whose definition did not change running, untouched",
    file: "lib/connect/server_fingerprint.ts",
    find: "    isolation: spec.isolation,",
    replace: "    isolation: spec.isolation,\n    at: spec.origin,",
    tests: ["tests/connect/server_entries_test.ts"],
    filter: "fingerprint",
  },
  {
    id: "upstream-session-lost",
    rule:
      "an HTTP upstream that forgot its session is initialized again, without an error for the caller",
    file: "lib/connect/http_upstream.ts",
    find: "if (response.status === 404) return true;",
    replace: "if (response.status === 404) return false;\n  return false;",
    tests: ["tests/connect/http_upstream_test.ts"],
  },
  {
    id: "channel-frames-routed",
    rule: "on a link with channels, each gateway frame reaches the server of its channel",
    file: "lib/connect/uplink.ts",
    find: "    return channel === undefined ? undefined : this.#members.get(channel);",
    replace: "    return this.#members.values().next().value;",
    tests: ["tests/e2e/many_servers_contracts_test.ts"],
    filter: "shared link drops",
  },
  // -- reconnecting (issue 17) --
  {
    id: "reconnect-healthy-first-attempt",
    rule: "after a healthy link drops, the first reconnect attempt goes out within 50 ms",
    file: "lib/util/backoff.ts",
    find: "  firstJitterMs: 50,",
    replace: "  firstJitterMs: 1000,",
    tests: ["tests/util/backoff_test.ts", "tests/connect/uplink_test.ts"],
  },
  {
    id: "reconnect-healthy-ignored",
    rule: "the drop of a healthy link starts the quick schedule (the first attempt within 50 ms)",
    file: "lib/connect/uplink.ts",
    find: "      this.#afterHealthy = upMs >= healthyAfterMs ||",
    replace: "      this.#afterHealthy = false && upMs >= healthyAfterMs ||",
    tests: ["tests/connect/uplink_test.ts"],
    filter: "healthy",
  },
  {
    id: "reconnect-calls-make-healthy",
    rule:
      "a link that carried a call counts as healthy after a second, without waiting the full time",
    file: "lib/connect/uplink.ts",
    find: "    this.#carried = true;\n",
    replace: "",
    tests: ["tests/connect/uplink_test.ts"],
    filter: "carried a call",
  },
  {
    id: "reconnect-no-hot-loop",
    rule:
      "a link dropped before it was healthy counts as a failure: the backoff grows (no hot loop)",
    file: "lib/connect/uplink.ts",
    find: "      this.#attempt = this.#afterHealthy ? 1 : this.#attempt + 1;",
    replace: "      this.#attempt = 1;",
    tests: ["tests/connect/uplink_test.ts"],
    filter: "drops every link at once",
  },
  {
    id: "reconnect-refused-backs-off",
    rule:
      "a gateway that refuses every registration is dialed with the normal backoff, not the quick one",
    file: "lib/connect/uplink.ts",
    find: "      afterHealthy: this.#afterHealthy,",
    replace: "      afterHealthy: true,",
    tests: ["tests/connect/uplink_test.ts"],
    filter: "refuses every registration",
  },
  // -- serve's request view (issue 17) --
  {
    id: "request-path-unparsed",
    rule: "serve routes on the path the URL parser gives, also for targets it would normalize",
    file: "lib/serve/http/node_request.ts",
    find:
      "return PLAIN_PATH.test(path) && !DOT_SEGMENT.test(path) ? path : new URL(this.url).pathname;",
    replace: "return PLAIN_PATH.test(path) ? path : new URL(this.url).pathname;",
    tests: ["tests/serve/http/node_request_test.ts"],
  },
];
