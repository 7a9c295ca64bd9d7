// The JSON the console reads from the API, as the API's response schemas (gateway/http/schemas.ts,
// groups.ts; /docs) describe it: only the fields the pages use.

export type Role = 'viewer' | 'operator' | 'admin';
export type RolloutState = 'pending' | 'running' | 'held' | 'completed' | 'aborted';
export type WaveState = 'pending' | 'active' | 'soaking' | 'passed' | 'missed' | 'aborted' | 'cancelled';

export interface Me {
  name: string;
  role: Role;
  csrf: string | null;
  expiresAt: number | null;
  idleTimeoutSeconds: number | null;
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

export interface Thresholds {
  ackThreshold: number;
  failureThreshold: number;
  minDevices: number;
  maxUnreachable: number;
  timeoutSeconds: number;
  soakSeconds: number;
  /** only `verified` counts for health-checked devices (docs/architecture.md §9); absent in a record from before it existed: true */
  requireVerified?: boolean;
}

export interface Figures {
  members: number;
  pending: number;
  sent: number;
  applied: number;
  rejected: number;
  failing: number;
  timedOut: number;
  unreachable: number;
  /** health-checked devices (docs/architecture.md §9) */
  verifying?: number;
  verified?: number;
  unverified?: number;
  reverted?: number;
  acked: number;
  responded: number;
  ackRatio: number;
  failureRatio: number;
  failureCounted: boolean;
  unreachableRatio: number;
}

export interface Wave extends Figures {
  index: number;
  state: WaveState;
  plannedSize: number | string;
  size: number;
  rejectedByReason: Record<string, number>;
  thresholds: Thresholds;
  startedAt: number | null;
  deadline: number | null;
  soakUntil: number | null;
  endedAt: number | null;
}

export interface Decision {
  at: number;
  actor: string;
  action: string;
  reason: string;
  from: RolloutState;
  to: RolloutState;
  wave?: number;
  waveFrom?: WaveState;
  waveTo?: WaveState;
  figures?: Figures;
  /** a hold on a revert: the endpoint (host:port) the device reverted on (docs/architecture.md §9) */
  endpoint?: string;
  thresholds?: Thresholds;
}

/** What a rollout that asked for approval carries (gateway/rollout/approval.ts ApprovalState). */
export interface Approval {
  /** true while the rollout cannot start until someone approves it */
  needed: boolean;
  /** operators who must agree, the creator being one */
  required: number;
  /** approvals still wanted from operators other than the creator */
  remaining: number;
  approvals: Array<{ actor: string; at: number }>;
  requestedBy: string;
  requestedAt: number;
  removed: Array<{ host: string; port: number; pins: string[]; endpoint: boolean }>;
  /** what it removes, in words: "removes 1 pin of api.example.com:443" */
  reason: string;
  passedBy?: 'rollback';
}

export interface Rollout {
  id: string;
  state: RolloutState;
  bundle: { id: string; seq: number; group: string };
  target: { group?: string; devices?: string[] };
  onMiss: 'hold' | 'abort';
  devices: number;
  wave: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  nextDeadline: number | null;
  createdBy: string;
  previousBundle: string | null;
  rollbackOf?: string;
  rolledBackBy?: string;
  waves: Wave[];
  decisions: Decision[];
  approval?: Approval;
}

export interface Group {
  group: string;
  devices: number;
  connected: number;
  revoked: number;
  neverConnected: number;
  bySeq: Array<{ seq: number | null; devices: number; connected: number }>;
  byModel: Array<{ model: string | null; devices: number; connected: number }>;
  baseline: { bundle: string; seq: number | null } | null;
  rollout: { id: string; state: RolloutState; bundleSeq: number } | null;
}

export type DeviceState = 'connected' | 'offline' | 'never_connected' | 'revoked';

export interface Device {
  id: string;
  group: string;
  model: string | null;
  firmware: string | null;
  seq: number | null;
  bundle: string | null;
  connected: boolean;
  state: DeviceState;
  lastSeen: number | null;
  createdAt: number;
}

export interface DeviceDetail extends Device {
  keyEpoch: number | null;
  /** external broker mode: the broker it was provisioned onto and connects to; null on the embedded broker */
  broker: string | null;
  lastConnectAt: number | null;
  lastDisconnectAt: number | null;
  revokedAt: number | null;
  rollout: { id: string; state: RolloutState; status: string; wave: number; reason?: string; at: number | null } | null;
  history: Array<{ at: number; rolloutId?: string; bundleId: string; seq: number; event: string; reason?: string }>;
  telemetry: Array<{ at: number; hostname: string; port: number; result: string; servedPins: string[]; knownPins: string[]; seq: number; count: number; rolloutId: string | null }>;
}

export interface StuckDevice {
  id: string;
  group: string;
  model: string | null;
  seq: number | null;
  bundle: string | null;
  targetSeq: number;
  reason: string;
  since: number | null;
  connected: boolean;
}

export interface PinFailure {
  host: string;
  port: number;
  result: string;
  observedPin: string | null;
  bundleId: string | null;
  devices: number;
  devicesCapped?: boolean;
  failures: number;
  lastReceived: string;
}

export interface Bundle {
  id: string;
  group: string;
  seq: number;
  size: number;
  createdAt: number;
  createdBy: string | null;
}

export interface PinDiffEndpoint {
  host: string;
  port: number;
  change: 'added' | 'removed' | 'changed' | 'unchanged';
  added: string[];
  removed: string[];
  kept: string[];
}

/** The pins of a bundle against what its group runs now (GET /v1/bundles/:id adds it). */
export interface PinDiff {
  against: { kind: 'baseline'; bundleId: string; seq: number } | { kind: 'none' };
  endpoints: PinDiffEndpoint[];
}

export interface BundleDetail extends Bundle {
  kid: string;
  version: number;
  iat: number;
  exp: number;
  expiryPolicy?: 'enforce' | 'ca-fallback';
  endpoints: Array<{ host: string; port: number; pins: string[]; mode?: 'enforce' | 'report-only'; notBefore?: number; notAfter?: number }>;
  keyRotation?: { epoch: number; keys: string[] };
  diff?: PinDiff;
}
