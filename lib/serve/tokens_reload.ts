// Re-reads serve's tokens file when asked (SIGHUP, wired in main.ts), so that a token added with
// `mcp-rproxy token new` works without a restart; a file that does not parse leaves the old tokens in use.

import { logger } from "../util/log.ts";
import type { TokenStore } from "./token_store.ts";

const log = logger("serve", "auth");

/** Options of {@link reloadTokensOnRequest}. */
export interface TokensReloadOptions {
  /** Subscribes a listener to reload requests; returns its removal. */
  subscribe: (listener: () => void) => () => void;
  /** The store whose tokens-file entries are replaced. */
  store: TokenStore;
  /** The `--tokens-file` path; undefined = serve has none, and a request only says so. */
  path: string | undefined;
  /** Reads the file as text. */
  readTextFile: (path: string) => Promise<string>;
}

/** Reloads in progress, stopped by {@link TokensReload.close}. */
export interface TokensReload {
  /** Stops listening and waits for a reload in progress. */
  close(): Promise<void>;
}

/**
 * Reloads the tokens file on every request. Requests that arrive during a reload are folded into one
 * more reload after it, so the file read last is the one in use.
 *
 * @example
 * ```ts ignore
 * const reload = reloadTokensOnRequest({ subscribe, store, path: "tokens.yaml", readTextFile });
 * // … on shutdown:
 * await reload.close();
 * ```
 */
export function reloadTokensOnRequest(options: TokensReloadOptions): TokensReload {
  const { subscribe, store, path, readTextFile } = options;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;

  async function reloadOnce(file: string): Promise<void> {
    let text: string;
    try {
      text = await readTextFile(file);
    } catch (error) {
      log.error(
        "Kept the previous tokens: cannot read --tokens-file {file} to reload it: {error}",
        { event: "tokens_reload_failed", file, error: (error as Error).message },
      );
      return;
    }
    try {
      const count = store.replaceTokensFile(text);
      log.info("Reloaded --tokens-file {file}: {count} token(s) in use", {
        event: "tokens_reloaded",
        file,
        count,
      });
    } catch (error) {
      // parseTokensFile's messages name the entry and the problem, never the token.
      log.error(
        "Kept the previous tokens: --tokens-file {file} is not a valid tokens file: {error}; fix it and send SIGHUP again",
        { event: "tokens_reload_failed", file, error: (error as Error).message },
      );
    }
  }

  async function loop(file: string): Promise<void> {
    do {
      again = false;
      await reloadOnce(file);
    } while (again && !closed);
    running = undefined;
  }

  const unsubscribe = subscribe(() => {
    if (closed) return;
    if (path === undefined) {
      log.info("Nothing to reload: serve was started without --tokens-file", {
        event: "tokens_reload_skipped",
      });
      return;
    }
    if (running !== undefined) {
      again = true;
      return;
    }
    running = loop(path);
  });

  return {
    async close() {
      closed = true;
      unsubscribe();
      await running;
    },
  };
}
