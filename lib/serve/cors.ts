// Which browser origins may use the MCP endpoints, and the CORS headers that let an allowed browser read
// the answers. Requests without an `Origin` (every non-browser client) pass.

import type { HttpRequest } from "./http_request.ts";
import { ErrorCode, errorResponse } from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import { heldBackText, LogThrottle } from "../util/log_throttle.ts";

const log = logger("serve", "cors");

/** CORS headers every answer to an allowed browser origin carries (besides the origin itself). */
const CORS_EXPOSE = {
  "access-control-expose-headers": "mcp-session-id, www-authenticate",
  vary: "Origin",
};
/** CORS headers of a preflight answer; a browser may cache it this many seconds (Chrome caps at 7200). */
const CORS_PREFLIGHT = {
  "access-control-allow-methods": "GET, POST, DELETE",
  "access-control-allow-headers":
    "authorization, content-type, mcp-session-id, mcp-protocol-version, last-event-id",
  "access-control-max-age": "7200",
};

/**
 * The origin policy of the MCP endpoints.
 *
 * @example
 * ```ts
 * import { CorsPolicy } from "./cors.ts";
 * const cors = new CorsPolicy(new Set(["https://app.example"]));
 * cors.allows("https://app.example"); // true
 * ```
 */
export class CorsPolicy {
  #allowed: ReadonlySet<string>;
  /** A token holder can send refused origins at will: one warning per interval, with a count. */
  #warnings = new LogThrottle({ intervalMs: 10_000 });

  /** `allowed`: origins allowed in an `Origin` header (`*` allows any). The set may grow later. */
  constructor(allowed: ReadonlySet<string>) {
    this.#allowed = allowed;
  }

  /** True for an origin the policy allows. */
  allows(origin: string): boolean {
    return this.#allowed.has("*") || this.#allowed.has(origin);
  }

  /**
   * The 403 for a request whose `Origin` is not allowed, or undefined when it may go on. Logged as a
   * warning for an authenticated request; at debug for a preflight, which carries no token (requests
   * without a token cost no log volume).
   */
  refusal(
    request: HttpRequest,
    serverName: string,
    options: { authenticated?: boolean } = {},
  ): Response | undefined {
    const origin = request.headers.get("origin");
    if (origin === null || this.allows(origin)) return undefined;
    const fields = {
      event: "origin_refused",
      origin: origin.slice(0, 200),
      name: serverName.slice(0, 200),
    };
    if (options.authenticated === false) log.debug("Refused origin {origin} for {name}", fields);
    else {
      const suppressed = this.#warnings.take();
      if (suppressed !== undefined) {
        log.warning("Refused origin {origin} for {name}{more}", {
          ...fields,
          more: heldBackText(suppressed),
        });
      }
    }
    return Response.json(
      errorResponse(
        null,
        ErrorCode.InvalidRequest,
        `Origin ${origin.slice(0, 200)} is not allowed`,
      ),
      { status: 403 },
    );
  }

  /**
   * Adds the CORS headers a browser needs to read `response` when the request came from an allowed
   * `Origin`; other responses are returned as they are.
   */
  apply(request: HttpRequest, response: Response): Response {
    const origin = request.headers.get("origin");
    if (origin === null || !this.allows(origin)) return response;
    response.headers.set("access-control-allow-origin", origin);
    for (const [name, value] of Object.entries(CORS_EXPOSE)) response.headers.set(name, value);
    return response;
  }

  /**
   * Answers a preflight (`OPTIONS`, which browsers send without credentials): 204 with the allowed
   * methods and headers for an allowed origin, 403 for another one.
   */
  preflight(request: HttpRequest, serverName: string): Response {
    const refused = this.refusal(request, serverName, { authenticated: false });
    if (refused !== undefined) return refused;
    const response = new Response(null, {
      status: 204,
      headers: { allow: "GET, POST, DELETE, OPTIONS" },
    });
    if (request.headers.get("origin") === null) return response;
    for (const [name, value] of Object.entries(CORS_PREFLIGHT)) response.headers.set(name, value);
    return this.apply(request, response);
  }
}
