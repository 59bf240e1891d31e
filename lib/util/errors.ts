// Errors a caller branches on, and the process exit codes they map to.

/** Process exit codes, documented in the README. */
export const ExitCode = {
  /** Clean shutdown (signal, or the session ended normally). */
  Ok: 0,
  /** Runtime failure: retries exhausted, the local server cannot start, an unexpected error. */
  Failure: 1,
  /** Bad input: flags, environment, config file. */
  Usage: 2,
  /** The gateway refused the credentials (HTTP 401/403 or close 1008): retrying will not help. */
  AuthRefused: 3,
  /** The gateway evicted the session (close 4001): an operator asked this client to go away. */
  Evicted: 4,
  /** A second signal arrived during shutdown. */
  Interrupted: 130,
} as const;

/** Bad user input. The message names the setting, the value seen and what is expected. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** The gateway refused our credentials or policy; reconnecting would not help. */
export class AuthRefusedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthRefusedError";
  }
}

/** The gateway removed the session on purpose and asked us not to come back. */
export class EvictedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EvictedError";
  }
}

/** The local server could not be started or initialized. */
export class ServerStartError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ServerStartError";
  }
}

/** Reconnect attempts ran out. */
export class RetriesExhaustedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RetriesExhaustedError";
  }
}
