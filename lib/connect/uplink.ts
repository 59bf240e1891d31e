// How servers reach the gateway: one link, dialed again with backoff while any server wants to be on it,
// carrying every server that attaches (our gateway's `channels` extension) or only the first (contracts
// A and B, or a gateway without the extension: then the others are told to dial links of their own).

import { delay } from "../util/delay.ts";
import { logger } from "../util/log.ts";
import { CloseCode, type Frame } from "../protocol/frames.ts";
import type { ResumeRequest } from "../protocol/registration.ts";
import type { ServerDescription } from "./link_options.ts";
import { AuthRefusedError, EvictedError } from "./errors.ts";
import { ReconnectSchedule } from "./reconnect_schedule.ts";
import { DialError, Link, type LinkEnd } from "./link.ts";
import { LinkChannel } from "./link_channel.ts";
import type { ConnectMetrics } from "./metrics.ts";
import type { ConnectSettings } from "./settings.ts";
import type { TransportChoice } from "./transport_choice.ts";
import type { Tunnel } from "./tunnel.ts";

const log = logger("connect");

/** A server as the uplink sees it. */
export interface UplinkMember {
  /** Its channel on a link with channels: its configured name ("" for a one-server form). */
  readonly key: string;
  /** What to register: known once its local server is initialized (or at once, per-client). */
  describe(): ServerDescription;
  readonly tunnel: Tunnel;
}

/** The gateway carries one server per link: the member must dial a link of its own. */
export class ChannelsRefused extends Error {
  constructor() {
    super("The gateway carries one server per link");
    this.name = "ChannelsRefused";
  }
}

/** Options of {@link Uplink}. */
export interface UplinkOptions {
  settings: ConnectSettings;
  /** Shutdown: no more dialing. */
  signal: AbortSignal;
  /** Ask our gateway to carry every member on one link. */
  askChannels: boolean;
  /** Our `X-Session-ID`. */
  clientSessionId: string;
  /** Which transport each dial uses (`--transport`); it may move a link back to WebSocket. */
  transport: TransportChoice;
  random?: (() => number) | undefined;
  /** A link that stayed up this long was healthy, in milliseconds (reconnect_schedule.ts). */
  healthyAfterMs?: number | undefined;
  /** The same for a link that carried a call. */
  healthyWithCallsAfterMs?: number | undefined;
  metrics?: ConnectMetrics | undefined;
}

interface Waiter {
  member: UplinkMember;
  resolve: (channel: LinkChannel) => void;
  reject: (error: unknown) => void;
  /** Set once its registration is under way: it can no longer be called off. */
  inFlight: boolean;
  /** The member's own stop. */
  signal: AbortSignal;
}

interface Attached {
  member: UplinkMember;
  channel: LinkChannel;
}

/** One link and the servers on it. */
export class Uplink {
  #options: UplinkOptions;
  #link: Link | undefined;
  #members = new Map<string, Attached>();
  #waiting = new Map<string, Waiter>();
  #opening: { member: UplinkMember; channel?: LinkChannel } | undefined;
  #dialing: Promise<void> | undefined;
  #schedule: ReconnectSchedule;
  #channelsRefused = false;
  #fatal: Error | undefined;
  /** The link is being closed by us (nothing left on it): its end is no failure. */
  #closing = false;
  /** The last link this uplink closed, done with the network (see {@link settled}). */
  #settling: Promise<void> = Promise.resolve();

  constructor(options: UplinkOptions) {
    this.#options = options;
    const { settings, random, healthyAfterMs, healthyWithCallsAfterMs } = options;
    this.#schedule = new ReconnectSchedule({
      baseMs: settings.reconnectDelay * 1000,
      maxRetries: settings.maxRetries,
      random,
      healthyAfterMs,
      healthyWithCallsAfterMs,
    });
  }

  /** True while a link is registered and open. */
  get up(): boolean {
    return this.#link?.isOpen === true;
  }

  /**
   * Registers `member` on the link, dialing it first when there is none (waiting the backoff after a
   * failure). Resolves with the member's place on the link.
   *
   * @throws {ChannelsRefused} when this link carries another server and the gateway has no channels
   * @throws {AuthRefusedError}, {EvictedError} (this member only), {RetriesExhaustedError}, a
   * {DialError} of this member's own registration, or the signal's reason while still waiting
   */
  attach(member: UplinkMember, signal: AbortSignal): Promise<LinkChannel> {
    if (this.#fatal !== undefined) return Promise.reject(this.#fatal);
    const link = this.#link;
    if (link?.isOpen) {
      if (this.#members.size > 0 && !link.channels) return Promise.reject(new ChannelsRefused());
      if (link.channels) return this.#registerChannel(link, member);
    }
    if (this.#channelsRefused && this.#members.size > 0) {
      return Promise.reject(new ChannelsRefused());
    }
    return new Promise<LinkChannel>((resolve, reject) => {
      const waiter: Waiter = { member, resolve, reject, inFlight: false, signal };
      const onAbort = () => {
        if (waiter.inFlight || this.#waiting.get(member.key) !== waiter) return;
        this.#waiting.delete(member.key);
        reject(signal.reason);
      };
      const settle = <T>(fn: (value: T) => void) => (value: T) => {
        signal.removeEventListener("abort", onAbort);
        fn(value);
      };
      waiter.resolve = settle(resolve);
      waiter.reject = settle(reject);
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiting.set(member.key, waiter);
      this.#ensureDialing();
    });
  }

  /** Runs the dial loop while anyone waits and no link is up. */
  #ensureDialing(): void {
    if (this.#dialing !== undefined) return;
    this.#dialing = this.#dialLoop().finally(() => {
      this.#dialing = undefined;
      const again = this.#waiting.size > 0 && this.#fatal === undefined &&
        !this.#options.signal.aborted && this.#link?.isOpen !== true;
      if (again) this.#ensureDialing();
    });
  }

  /**
   * The member leaves the link (its tunnel sent `unregister` already, or the server died). A link with
   * nothing left on it is closed with `reason`.
   */
  release(member: UplinkMember, reason: string): void {
    const attached = this.#members.get(member.key);
    if (attached === undefined || attached.member !== member) return;
    this.#members.delete(member.key);
    attached.channel.end({ kind: "released" });
    const link = this.#link;
    if (this.#members.size === 0 && link !== undefined && this.#opening === undefined) {
      this.#closing = true;
      link.close(CloseCode.Normal, reason);
      this.#settling = link.settled;
    }
  }

  /**
   * Resolves once the link this uplink closed last has sent what it had (the `unregister`) and its close.
   * The process must not exit before: the gateway would see the connection drop (1006) and keep the
   * session, and its server's name, for its resume window. Bound the wait: a silent peer never settles it.
   */
  get settled(): Promise<void> {
    return this.#settling;
  }

  /** Shutdown: every waiter fails, the link closes. */
  close(): void {
    for (const waiter of this.#waiting.values()) waiter.reject(this.#options.signal.reason);
    this.#waiting.clear();
    this.#closing = true;
    const link = this.#link;
    if (link === undefined) return;
    link.close(CloseCode.Normal, "shutting down");
    this.#settling = link.settled;
  }

  async #dialLoop(): Promise<void> {
    const { settings, signal, metrics } = this.#options;
    while (this.#waiting.size > 0 && !signal.aborted && this.#link?.isOpen !== true) {
      let waitMs: number | undefined;
      try {
        waitMs = this.#schedule.nextWaitMs();
      } catch (error: unknown) {
        return this.#failAll(error as Error);
      }
      if (waitMs !== undefined) {
        const { maxRetries } = settings;
        log.info("Reconnecting in {seconds} s (attempt {attempt}{of})", {
          event: "reconnect_scheduled",
          seconds: (waitMs / 1000).toFixed(2),
          waitMs,
          attempt: this.#schedule.attempt,
          of: maxRetries > 0 ? ` of ${maxRetries}` : "",
        });
        if (waitMs > 0) await delay(waitMs, signal).catch(() => {});
        if (signal.aborted || this.#waiting.size === 0) return;
        metrics?.linkReconnects.inc();
      }
      const waiter = this.#waiting.values().next().value!;
      await this.#dial(waiter);
    }
  }

  async #dial(waiter: Waiter): Promise<void> {
    const { settings, signal, metrics, askChannels, clientSessionId, transport } = this.#options;
    const { member } = waiter;
    waiter.inFlight = true;
    const tunnel = member.tunnel;
    const resume = tunnel.prepareDial();
    const started = performance.now();
    this.#opening = { member };
    let link: Link;
    try {
      link = await transport.dial((dial) => {
        log.info("Connecting to {url} over {transport}", {
          event: "connecting",
          url: dial.url.href,
          transport: dial.transport,
        });
        return Link.open({
          url: dial.url,
          openSocket: dial.openSocket,
          transport: dial.transport,
          ...(settings.token === undefined ? {} : { token: settings.token }),
          ...(settings.caCert === undefined ? {} : { caCert: settings.caCert }),
          ...(settings.caCertPath === undefined ? {} : { caCertPath: settings.caCertPath }),
          clientSessionId,
          server: member.describe(),
          ...(askChannels ? { channel: member.key } : {}),
          keepaliveMs: settings.keepalive * 1000,
          signal,
          onFrame: (frame, link) => this.#route(frame, link),
          onRegistered: (link) => this.#registered(link, member, resume),
          onAck: (ack, channel) => this.#memberOf(channel)?.member.tunnel.peerAcked(ack),
          heartbeatAck: () => this.#memberOf(undefined)?.member.tunnel.heartbeatAck(),
          heartbeatAcks: () => this.#acks(),
          onChannelClosed: (channel, code, reason) => this.#channelClosed(channel, code, reason),
          ...(resume === undefined ? {} : { resume }),
          ...(metrics
            ? {
              onHeartbeatRtt: (ms: number) => metrics.heartbeatRtt.observe(ms / 1000),
              onFrameIn: (bytes: number) => {
                metrics.framesIn.inc();
                metrics.bytesIn.inc(bytes);
              },
            }
            : {}),
        });
      });
    } catch (error: unknown) {
      this.#opening = undefined;
      waiter.inFlight = false;
      tunnel.dialFailed();
      if (signal.aborted || waiter.signal.aborted) {
        this.#waiting.delete(member.key);
        return waiter.reject(signal.aborted ? signal.reason : waiter.signal.reason);
      }
      if (!(error instanceof DialError)) return this.#failAll(error as Error);
      if (error.kind === "auth") {
        return this.#failAll(new AuthRefusedError(error.message, { cause: error }));
      }
      if (error.kind === "evicted") {
        this.#waiting.delete(member.key);
        return waiter.reject(new EvictedError(error.message, { cause: error }));
      }
      if (error.kind === "shared-only") {
        // This server alone cannot run on this gateway; retrying would not change that.
        this.#waiting.delete(member.key);
        return waiter.reject(error);
      }
      this.#schedule.failed(error.message);
      metrics?.errors.inc(dialErrorKind(error));
      // The message is a whole sentence naming the cause and the fix (lib/connect/dial_failure.ts).
      log.warning("{error}", { event: "connect_failed", kind: error.kind, error: error.message });
      return;
    }
    const channel = this.#opening!.channel!;
    this.#opening = undefined;
    this.#waiting.delete(member.key);
    metrics?.linkConnects.inc();
    metrics?.registrationDuration.observe((performance.now() - started) / 1000);
    metrics?.linkUp.inc();
    this.#schedule.opened(link.registration.resumed === true);
    void link.ended.then((end) => this.#linkEnded(link, end));
    this.#watchTransport(link);
    waiter.resolve(channel);
    if (askChannels && !link.channels) this.#channelsRefused = true;
    // Everyone else who waited joins this link, or learns that they need links of their own.
    for (const other of [...this.#waiting.values()]) {
      this.#waiting.delete(other.member.key);
      if (!link.channels) other.reject(new ChannelsRefused());
      else {
        other.inFlight = true;
        this.#registerChannel(link, other.member).then(other.resolve, other.reject);
      }
    }
  }

  /**
   * While `auto` holds this link on SSE: once a WebSocket upgrade passes again, the link is closed by us
   * and every server on it dials (and resumes) at once, over WebSocket.
   */
  #watchTransport(link: Link): void {
    const held = new AbortController();
    void link.ended.then(() => held.abort());
    void this.#options.transport.websocketPasses(held.signal).then((passes) => {
      if (!passes || link !== this.#link || !link.isOpen) return;
      link.close(CloseCode.Normal, "moving the link to WebSocket");
    });
  }

  /** The first server's registration completed (synchronously, before any later frame). */
  #registered(link: Link, member: UplinkMember, resume: ResumeRequest | undefined): void {
    const opening = this.#opening!;
    opening.channel ??= new LinkChannel(link, link.channels ? member.key : undefined);
    this.#link = link;
    this.#closing = false;
    this.#members.set(member.key, { member, channel: opening.channel });
    member.tunnel.registered(opening.channel, resume);
  }

  /** Registers one more server on a link with channels. */
  async #registerChannel(link: Link, member: UplinkMember): Promise<LinkChannel> {
    const { metrics } = this.#options;
    const resume = member.tunnel.prepareDial();
    const channel = new LinkChannel(link, member.key);
    const started = performance.now();
    try {
      await link.registerChannel(
        { channel: member.key, server: member.describe(), resume },
        (registration) => {
          channel.registration = registration;
          this.#members.set(member.key, { member, channel });
          member.tunnel.registered(channel, resume);
        },
      );
    } catch (error: unknown) {
      member.tunnel.dialFailed();
      if (error instanceof DialError && error.kind === "evicted") {
        throw new EvictedError(error.message, { cause: error });
      }
      throw error;
    }
    metrics?.registrationDuration.observe((performance.now() - started) / 1000);
    return channel;
  }

  #memberOf(channel: string | undefined): Attached | undefined {
    if (this.#link?.channels !== true) return this.#members.values().next().value;
    return channel === undefined ? undefined : this.#members.get(channel);
  }

  #acks(): Record<string, number> {
    const acks: Record<string, number> = {};
    for (const [key, { member }] of this.#members) {
      const ack = member.tunnel.heartbeatAck();
      if (ack !== undefined) acks[key] = ack;
    }
    return acks;
  }

  #route(frame: Frame, link: Link): void {
    if (link !== this.#link) {
      // Before registration completes: B's discovery, for the server being registered.
      const opening = this.#opening;
      if (opening === undefined) return;
      opening.channel ??= new LinkChannel(link, undefined);
      opening.member.tunnel.onFrame(frame, opening.channel);
      return;
    }
    const attached = this.#memberOf(frame.channel);
    if (attached === undefined) {
      log.debug("A {type} frame for channel {channel}, which carries no server here; ignored", {
        event: "frame_unrouted",
        type: frame.type,
        channel: String(frame.channel),
      });
      return;
    }
    this.#schedule.carried();
    attached.member.tunnel.onFrame(frame, attached.channel);
  }

  #channelClosed(channel: string, code: number, reason: string): void {
    const attached = this.#members.get(channel);
    if (attached === undefined) return;
    this.#members.delete(channel);
    attached.channel.end({ kind: "channel-closed", code, reason });
  }

  #linkEnded(link: Link, end: LinkEnd): void {
    if (link !== this.#link) return;
    this.#link = undefined;
    const { metrics } = this.#options;
    metrics?.linkUp.dec();
    const attached = [...this.#members.values()];
    this.#members.clear();
    const ours = this.#closing || end.kind === "local";
    this.#closing = false;
    // Policy (auth), evicted and superseded ends are each server's to report: they do not come back.
    const final = end.kind === "closed" &&
      [CloseCode.Policy, CloseCode.Evicted, CloseCode.Superseded].includes(
        end.code as typeof CloseCode.Policy,
      );
    if (!ours && !final) {
      const reason = end.kind === "heartbeat"
        ? "no heartbeat reply in time"
        : `closed with code ${end.code}${end.reason ? ` (${end.reason})` : ""}`;
      metrics?.errors.inc(end.kind === "heartbeat" ? "heartbeat_timeout" : "link_lost");
      log.warning("Lost the link to the gateway: {error}", { event: "link_lost", error: reason });
      this.#schedule.dropped(reason);
    }
    for (const { channel } of attached) channel.end(end);
    if (this.#waiting.size > 0) this.#ensureDialing();
  }

  #failAll(error: Error): void {
    this.#fatal = error;
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
  }
}

/** The error kind a failed dial counts as. */
function dialErrorKind(error: DialError): "dial" | "registration" | "too_many_sessions" {
  switch (error.kind) {
    case "register-timeout":
    case "registration-failed":
      return "registration";
    case "too-many-sessions":
      return "too_many_sessions";
    default:
      return "dial";
  }
}
