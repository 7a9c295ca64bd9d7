// The device simulator's public surface (docs/architecture.md §1): simulated devices that verify,
// apply, acknowledge, fail and report exactly as firmware would, a fleet runner for thousands of them,
// their behaviours, real TLS pin checks, provisional apply with health-checked commits
// (docs/pin-safety.md), local TLS endpoints, and scenario files. Other parts import from here only.
export { SimDevice, BundleVerifier, verifyEach, type SimDeviceOptions, type DeviceQuirks, type DeviceOutcome, type Verifier, type VerifyCounters, type EndpointCheck, type HandshakeSource, type WindowTimers } from './device.ts';
export { MemoryStateStore, DirStateStore, type StateStore } from './state-store.ts';
export { Fleet, Scheduler, realTimers, type FleetOptions, type FleetModel, type FleetDevice, type FleetSummary, type Timers, type Task } from './fleet.ts';
export { planDevice, checkBehaviours, mulberry32, seedOf, sample, BEHAVIOUR_DEFAULTS, type Behaviours, type DevicePlan, type Distribution, type ReconnectStorm } from './behaviours.ts';
export { Handshakes, tlsHandshake, type CallHomeEndpoint, type HandshakeResult, type HandshakeOptions, type HandshakeCounters } from './handshakes.ts';
export { startTlsEndpoint, makeCertificate, unservedPin, type TlsEndpoint, type EndpointOptions } from './endpoints.ts';
export { loadScenario, validateScenario, formatScenarioErrors, allocate, withHealthCheck, SCENARIO_SCHEMA, MAX_SIM_DEVICES, type Scenario, type ScenarioModel, type ScenarioError, type ScenarioResult } from './scenario.ts';
export { TIMER_MAX_MS, overTimerLimit } from './timer-limit.ts';
export { mergeSummaries, formatHistogram, quantile, emptyHistogram, type Histogram } from './latency.ts';
