// One server's place on a link: the link, the channel its frames name (with the `channels` extension;
// none on a link of its own), and the session id its own registration gave. Routing (Tunnel) sends
// through it; it ends when the link ends, when the gateway closes the channel, or when we let go.

import type { Contract, Link, LinkEnd, Registration } from "./link.ts";

/** How a server's place on a link ended. */
export type ChannelEnd =
  /** The link itself ended. */
  | LinkEnd
  /** With channels: the gateway ended this server's session (`close` frame), the link goes on. */
  | { kind: "channel-closed"; code: number; reason: string }
  /** We let go of it: the server unregistered, died, or is stopping. */
  | { kind: "released" };

/** A server's place on a link. */
export class LinkChannel {
  readonly link: Link;
  /** The channel its frames name; undefined on a link without channels. */
  readonly channel: string | undefined;
  /** Resolves once, when the place is gone. */
  readonly ended: Promise<ChannelEnd>;
  #resolveEnded!: (end: ChannelEnd) => void;
  #end: ChannelEnd | undefined;
  #registration: Registration | undefined;

  constructor(link: Link, channel: string | undefined) {
    this.link = link;
    this.channel = channel;
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
  }

  /** This server's registration, once complete (the first server of a link: the link's own). */
  get registration(): Registration {
    return this.#registration ?? this.link.registration;
  }

  /** Records this server's own registration (a further channel of a link). */
  set registration(registration: Registration) {
    this.#registration = registration;
  }

  /** The session id this server's frames carry. */
  get sessionId(): string {
    return this.#registration?.sessionId ?? this.link.sessionId;
  }

  get contract(): Contract | undefined {
    return this.link.contract;
  }

  get maxFrameBytes(): number {
    return this.link.maxFrameBytes;
  }

  hasExtension(name: string): boolean {
    return this.link.hasExtension(name);
  }

  get bufferedAmount(): number {
    return this.link.bufferedAmount;
  }

  /** True while this server's frames can be sent. */
  get isOpen(): boolean {
    return this.#end === undefined && this.link.isOpen;
  }

  /** True once ended. */
  get isEnded(): boolean {
    return this.#end !== undefined;
  }

  sendText(text: string): boolean {
    return this.#end === undefined && this.link.sendText(text);
  }

  /** Closes the whole link (a sequence gap: every session on it resumes on the next one). */
  closeLink(code: number, reason: string): void {
    this.link.close(code, reason);
  }

  /** Ends this place; the first end counts. */
  end(end: ChannelEnd): void {
    if (this.#end !== undefined) return;
    this.#end = end;
    this.#resolveEnded(end);
  }
}
