// The outcomes of serve's commands that main.ts maps to an exit code of their own; no imports, so that
// main.ts can know them without loading serve.

/** `token new`: the tokens file or the --out file cannot be read or written (exit code 1). */
export class TokenFileError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TokenFileError";
  }
}

/**
 * `serve`: another process holds the state file (a second serve on the same `--state-dir`), exit code 1,
 * like an address in use.
 */
export class StateInUseError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StateInUseError";
  }
}
