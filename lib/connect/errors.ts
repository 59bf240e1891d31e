// The outcomes of `connect` that its caller branches on: each maps to its own exit code in main.ts.

/** The gateway refused our credentials or policy; reconnecting would not help (exit code 3). */
export class AuthRefusedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthRefusedError";
  }
}

/** The gateway removed the session on purpose and asked us not to come back (exit code 4). */
export class EvictedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EvictedError";
  }
}

/** The local server could not be started or initialized (exit code 1). */
export class ServerStartError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ServerStartError";
  }
}

/** Reconnect attempts ran out (exit code 1). */
export class RetriesExhaustedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RetriesExhaustedError";
  }
}
