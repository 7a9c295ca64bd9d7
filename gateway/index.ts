// The gateway's public surface (docs/architecture.md §1): what the HTTP API, the CLI and the benchmarks use.
export { Gateway, type GatewayOptions, type GatewayRollout, type GatewayCounters, type Logger, type ProvisionInput, type BundleInput, type RolloutInput } from './gateway.ts';
export { GatewayError, ERROR_STATUS, type GatewayErrorCode } from './errors.ts';
export { DeviceBroker, type DeviceBrokerOptions, type BrokerCounters } from './broker.ts';
export { checkDeviceId, isDeviceId, DEVICE_ID_MAX_LENGTH } from './device-id.ts';
export { hashDeviceToken, hashToken, newToken, tokenMatches, constantTimeEqualStrings } from './credentials.ts';
export { deviceTopic, parseDeviceTopic } from './topics.ts';
export { loadSigningKey, SigningKeyError, type SigningKey } from './signing-key.ts';
export { fetchServedChain } from './tls-probe.ts';
export { LowdbStore } from './store/lowdb.ts';
export type { Store, DeviceRecord, BundleRecord, Page } from './store/types.ts';
export { summary, type RolloutSummary } from './rollout/summary.ts';
export type { Rollout, PlanInput, WavePlanInput, Target, WaveThresholds } from './rollout/types.ts';
export type { Preflight, PreflightFinding } from './preflight.ts';
export type { StuckDevice } from './stuck.ts';
export * from './http/index.ts';
export * from './config.ts';
