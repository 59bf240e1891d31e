// What the gateway sends a server that routing cannot use: a frame of a type it does not know, a data
// frame without a payload, or one whose payload is not a JSON object. Each is logged once and ignored.

import { logger } from "../util/log.ts";
import type { Frame } from "../protocol/frames.ts";
import type { Payload } from "../protocol/payload.ts";

const log = logger("connect");

/** A data frame from the gateway: a request (or notification) for the server, or an answer to one of its. */
export type GatewayDataFrame = Frame & { type: "request" | "response"; payload: Payload };

/** True for a data frame routing can use; anything else is logged and should be ignored. */
export function isDataFrame(frame: Frame): frame is GatewayDataFrame {
  if (frame.type !== "request" && frame.type !== "response") {
    log.warning("Gateway sent an unknown frame type '{type}'; ignored", {
      event: "bad_frame",
      type: frame.type.slice(0, 64),
    });
    return false;
  }
  if (frame.payload === undefined) {
    log.warning("Gateway sent a '{type}' frame without a payload; ignored", {
      event: "bad_frame",
      type: frame.type,
    });
    return false;
  }
  return true;
}

/** True when the parsed payload is a JSON object (or batch); else logged: it should be ignored. */
export function isObjectPayload(frame: Frame, value: unknown): value is object {
  if (typeof value === "object" && value !== null) return true;
  log.warning("Gateway sent a '{type}' frame without a JSON object payload; ignored", {
    event: "bad_frame",
    type: frame.type,
  });
  return false;
}
