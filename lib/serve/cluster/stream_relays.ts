// Streams resumed on another replica than the one holding them. The replica a client's resume lands on
// (the asker) sends `resume` to the replica its Last-Event-ID names (the holder); the holder puts the
// stream on a connection of its own, bounded and charged there as any, and relays that connection's bytes
// in order as `stream_data`, then `stream_end`; the asker writes them to its client's connection, bounded
// and charged there. A client gone sends `stream_cancel`: the holder's connection ends and the stream
// waits out its resume window there, as for a client of its own.

import type { RelayOutcome, StreamReplica, StreamResume } from "../mcp_streams.ts";
import type { SseStream } from "../sse_stream.ts";
import type { Cluster } from "./cluster.ts";
import type { EnvelopeDraft } from "./envelope.ts";
import type { StreamForwards } from "./stream_forwards.ts";

const encoder = new TextEncoder();

/** A client's connection on the asker, fed by its stream's holder. */
interface Sink {
  rid: string;
  connection: SseStream;
}

/**
 * Both sides of resumed streams on one replica.
 *
 * @example
 * ```ts ignore
 * const relays = new StreamRelays(cluster, forwards);
 * const endpoint = new McpEndpoint({ ...options, streamReplica: relays.replica() });
 * relays.serve((request) => endpoint.resumed(request));
 * ```
 */
export class StreamRelays {
  readonly #cluster: Cluster;
  readonly #forwards: StreamForwards;
  /** Asker side: client connections fed by a holder, by relay id. */
  readonly #sinks = new Map<string, Sink>();
  /** Holder side: connections relayed to another replica, by relay id. */
  readonly #relays = new Map<string, ReadableStreamDefaultReader<Uint8Array>>();

  constructor(cluster: Cluster, forwards: StreamForwards) {
    this.#cluster = cluster;
    this.#forwards = forwards;
    cluster.on("stream_data", (envelope) => {
      const sink = this.#sinks.get(envelope.id);
      if (sink === undefined) return this.#stop(envelope.origin, envelope.id);
      if (!sink.connection.write(encoder.encode(envelope.payload))) this.#cancel(envelope.id);
    });
    cluster.on("stream_end", (envelope) => {
      const sink = this.#sinks.get(envelope.id);
      this.#sinks.delete(envelope.id);
      sink?.connection.close();
    });
    cluster.on("stream_cancel", (envelope) => {
      void this.#relays.get(envelope.id)?.cancel("the client left the other replica").catch(
        () => {},
      );
    });
    // A holder that died sends nothing more: its clients' connections end, and they resume again.
    cluster.events.addEventListener("beat", () => {
      for (const [id, sink] of this.#sinks) {
        if (cluster.liveness.alive(sink.rid)) continue;
        this.#sinks.delete(id);
        sink.connection.close();
      }
    });
  }

  /** Connections fed by another replica (asker side) and relayed to another (holder side). */
  get size(): { sinks: number; relays: number } {
    return { sinks: this.#sinks.size, relays: this.#relays.size };
  }

  /** The MCP endpoint's way to streams the others hold. */
  replica(): StreamReplica {
    return {
      id: this.#cluster.replicaId,
      resume: (rid, request, connection) => this.#resume(rid, request, connection),
    };
  }

  /** Serves resumes forwarded here: `take` puts the stream on a connection, whose bytes are relayed. */
  serve(take: (request: StreamResume) => Promise<RelayOutcome>): void {
    this.#forwards.serve("resume", async (payload, envelope) => {
      let request: StreamResume;
      try {
        request = JSON.parse(payload) as StreamResume;
      } catch {
        return JSON.stringify({ status: 400 });
      }
      if (typeof request.lastEventId !== "string" || typeof request.sessionId !== "string") {
        return JSON.stringify({ status: 400 });
      }
      const outcome = await take(request);
      if (!("connection" in outcome)) return JSON.stringify(outcome);
      // After the answer is on its way (the asker takes bytes before it too, but need not).
      const connection = outcome.connection;
      setTimeout(() => void this.#pump(envelope.id, envelope.origin, connection), 0);
      return JSON.stringify({ status: 200 });
    });
  }

  async #resume(
    rid: string,
    request: StreamResume,
    connection: SseStream,
  ): Promise<{ status: number; body?: string }> {
    const id = this.#forwards.newId();
    this.#sinks.set(id, { rid, connection });
    const cancelled = connection.onCancel;
    connection.onCancel = () => {
      cancelled?.();
      this.#cancel(id);
    };
    const overflowed = connection.onOverflow;
    connection.onOverflow = (bytes) => {
      overflowed?.(bytes);
      this.#cancel(id);
    };
    const outcome = await this.#forwards.ask({
      what: "resume",
      target: rid,
      sid: request.sessionId,
      payload: JSON.stringify(request),
      id,
    });
    if (!outcome.ok) {
      this.#cancel(id);
      return outcome.why === "gone"
        ? problem(410, `replica ${rid} that held this stream is gone; open the stream anew`)
        : problem(
          504,
          `${this.#forwards.timedOut(`replica ${rid} that holds this stream`)}; retry`,
        );
    }
    let answer: { status: number; body?: string };
    try {
      answer = JSON.parse(outcome.answer) as { status: number; body?: string };
    } catch {
      answer = { status: 502 };
    }
    if (answer.status !== 200) this.#sinks.delete(id);
    return answer;
  }

  /** Asker side: the client's connection ended; the holder stops relaying. */
  #cancel(id: string): void {
    const sink = this.#sinks.get(id);
    if (sink === undefined) return;
    this.#sinks.delete(id);
    this.#stop(sink.rid, id);
  }

  #stop(rid: string, id: string): void {
    void this.#send({ kind: "stream_cancel", target: rid, id, payload: "" }).catch(() => {});
  }

  /** Holder side: relays the connection's bytes to `target`, in order, until either side ends. */
  async #pump(id: string, target: string, connection: SseStream): Promise<void> {
    const reader = connection.readable.getReader();
    this.#relays.set(id, reader);
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        // One send at a time: envelopes reach the asker in order, and what the asker has not taken yet
        // waits here in the connection, bounded by --max-client-buffer and charged to its owner.
        const payload = decoder.decode(value, { stream: true });
        await this.#send({ kind: "stream_data", target, id, payload });
      }
    } catch {
      // Cut here (the owner's share), cancelled by the asker, or the asker is gone: the stream waits.
      await reader.cancel().catch(() => {});
    } finally {
      this.#relays.delete(id);
    }
    await this.#send({ kind: "stream_end", target, id, payload: "" }).catch(() => {});
  }

  #send(draft: Pick<EnvelopeDraft, "kind" | "target" | "id" | "payload">): Promise<void> {
    return this.#cluster.inbox.send({ ...draft, deadline: 0, generation: 0, sid: "" });
  }
}

function problem(status: number, message: string): { status: number; body: string } {
  const error = { code: -32600, message: `The stream cannot be resumed: ${message}` };
  return { status, body: JSON.stringify({ jsonrpc: "2.0", id: null, error }) };
}
