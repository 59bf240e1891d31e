// A per-client server's instances, wired to its tunnel: each instance is started as the shared server
// would be (same spec, same limits), with its own client's `initialize`, and what it writes, loses or
// changes is routed through the tunnel with its client session.

import { ClientInstances } from "./client_instances.ts";
import { answerOversized } from "./frame_limit.ts";
import type { LocalSession } from "./local_session.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { StartServerOptions } from "./server_start.ts";
import { CONNECT_DEFAULTS, type ConnectSettings, type ServerSpec } from "./settings.ts";
import type { Tunnel } from "./tunnel.ts";

/** What {@link perClientInstances} needs of the server's runner. */
export interface PerClientWiring {
  settings: ConnectSettings;
  /** The server's name for messages and logs. */
  label: string;
  tunnel: Tunnel;
  metrics: ServerMetrics | undefined;
  /** Starts the server as its spec says, with an instance's own parameters and routes. */
  start: (
    instance: Pick<StartServerOptions, "instance" | "onMessage" | "onOversized">,
  ) => Promise<LocalSession>;
}

/** The instances of the per-client server `spec`, with its `max_instances` and idle timeout. */
export function perClientInstances(spec: ServerSpec, wiring: PerClientWiring): ClientInstances {
  const { settings, label, tunnel, metrics, start } = wiring;
  return new ClientInstances({
    label,
    maxInstances: spec.maxInstances ?? CONNECT_DEFAULTS.maxInstances,
    idleTimeoutMs: (spec.instanceIdleTimeout ?? CONNECT_DEFAULTS.instanceIdleTimeout) * 1000,
    maxPending: settings.maxServerQueueMessages ?? CONNECT_DEFAULTS.maxServerQueueMessages,
    start: (instance, onMessage) =>
      start({
        instance,
        onMessage,
        onOversized: (id) =>
          answerOversized(tunnel, {
            settings,
            id,
            clientSession: instance.clientSession,
            metrics,
          }),
      }),
    onMessage: (message) => tunnel.fromServer(message),
    onLost: (calls, why) => tunnel.failCalls(calls, why),
    onChange: () => tunnel.reportInstances(),
    metrics,
  });
}
