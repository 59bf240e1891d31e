// The product version, from deno.json (the one place it is written).

import meta from "../../deno.json" with { type: "json" };

/** The version of mcp-rproxy. */
export const VERSION: string = meta.version;
