// What a table of MCP client sessions asks of the replicas it shares them with (lib/serve/cluster/
// shared_sessions.ts implements it): publish, renew, find, forget.

import type { JsonObject } from "../util/json_object.ts";

/** What a table of sessions shared between replicas tells and asks the others. */
export interface SharedSessionHooks {
  /** A session opened here (`perClient`: its server gives it an instance of its own). */
  opened(
    fields:
      & { id: string; owner: string; serverName: string; perClient?: boolean | undefined }
      & SessionDeclared,
  ): void;
  /** A session was used here. */
  used(id: string): void;
  /**
   * The session another replica opened, if it is known.
   *
   * @throws {SessionsUnavailableError} Whether it exists cannot be known now.
   */
  find(id: string): Promise<
    ({ id: string; owner: string; serverName: string } & SessionDeclared) | undefined
  >;
  /** The client ended the session. */
  deleted(id: string): void;
  /** Resolves once the session opened here is published (or failed to be): before its id goes out. */
  published(id: string): Promise<void>;
}

/**
 * The replicas cannot tell now whether a session exists: Redis is unreachable, or it came back empty a
 * moment ago and the replicas are still publishing again what it lost. The client should retry (503),
 * not initialize again (404): its session most likely lives on.
 */
export class SessionsUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SessionsUnavailableError";
  }
}

/** What a client declared in its `initialize`. */
export interface SessionDeclared {
  capabilities: JsonObject;
  protocolVersion: string;
}
