// Every attack scenario, in the order `deno task attacks` runs them, with the test file that asserts it.

import type { AttackScenario } from "../run_attack.ts";
import { abandonedCalls } from "./abandoned_calls.ts";
import { deafLink, unreadJsonAnswers } from "./unread_answers.ts";
import { bigFrames } from "./big_frame.ts";
import { malformedUrls } from "./malformed_url.ts";
import { slowHttp } from "./slow_http.ts";
import { streamsPerToken } from "./streams_per_token.ts";
import { neverAck, paddedRegister, unknownIds } from "./tunnel_abuse.ts";
import { unreadStreams } from "./unread_streams.ts";
import { heartbeatSquatters, sessionLimitSquatters } from "./unregistered_links.ts";

/** A scenario and the test that asserts what it must show. */
export interface ListedAttack {
  scenario: AttackScenario<unknown>;
  /** The test file, relative to the repository root. */
  test: string;
}

/** Every attack scenario. */
export const ATTACKS: readonly ListedAttack[] = [
  { scenario: bigFrames, test: "tests/attack/big_frame_test.ts" },
  { scenario: heartbeatSquatters, test: "tests/attack/unregistered_links_test.ts" },
  { scenario: sessionLimitSquatters, test: "tests/attack/unregistered_links_test.ts" },
  { scenario: unreadStreams, test: "tests/attack/unread_streams_test.ts" },
  { scenario: neverAck, test: "tests/attack/tunnel_abuse_test.ts" },
  { scenario: paddedRegister, test: "tests/attack/tunnel_abuse_test.ts" },
  { scenario: unknownIds, test: "tests/attack/tunnel_abuse_test.ts" },
  { scenario: malformedUrls, test: "tests/attack/malformed_url_test.ts" },
  { scenario: slowHttp, test: "tests/attack/slow_http_test.ts" },
  { scenario: abandonedCalls, test: "tests/attack/abandoned_calls_test.ts" },
  { scenario: streamsPerToken, test: "tests/attack/streams_per_token_test.ts" },
  { scenario: unreadJsonAnswers, test: "tests/attack/unread_answers_test.ts" },
  { scenario: deafLink, test: "tests/attack/unread_answers_test.ts" },
];
