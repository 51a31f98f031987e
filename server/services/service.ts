/** A running network service started by the composition root. */
export interface Service {
  readonly name: string;
  /** Human-readable endpoints, e.g. `udp 0.0.0.0:67`, for the startup banner. */
  readonly endpoints: string[];
  close(): Promise<void>;
}
