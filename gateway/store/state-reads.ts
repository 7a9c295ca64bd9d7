// The read half of the stores that keep the fleet in memory (the memory store and the embedded
// store): every read answered from their FleetState, as copies, once the store is open.
import type {
  ChangeStore,
  DeviceFilter,
  GroupRecord,
  JsonObject,
  MemberFilter,
  MemberRecord,
  PageQuery,
  RolloutFilter,
  StoredRollout,
  TelemetryBucket,
} from './changes.ts';
import { FleetState } from './fleet-state.ts';
import { StoreError, type BundleRecord, type DeviceCore, type DeviceRecord, type Page } from './types.ts';

export abstract class StateReads implements Pick<ChangeStore, Exclude<keyof ChangeStore, 'open' | 'close' | 'apply' | 'status'>> {
  protected state = new FleetState();
  protected phase: 'new' | 'opening' | 'open' | 'closed' = 'new';
  protected abstract readonly name: string;

  protected assertOpen(): void {
    if (this.phase === 'open') return;
    if (this.phase === 'closed') throw new StoreError('PW_STORE_CLOSED', `store ${this.name} is closed`);
    throw new StoreError('PW_STORE_NOT_LOADED', `store ${this.name}: call open() first`);
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    this.assertOpen();
    return this.state.getDevice(id);
  }
  async getDeviceCore(id: string): Promise<DeviceCore | null> {
    this.assertOpen();
    return this.state.getDeviceCore(id);
  }
  getDeviceCoreNow(id: string): DeviceCore | null | undefined {
    this.assertOpen();
    return this.state.getDeviceCore(id);
  }
  async getDevices(ids: readonly string[]): Promise<Array<DeviceRecord | null>> {
    this.assertOpen();
    return this.state.getDevices(ids);
  }
  async listDevices(filter?: DeviceFilter): Promise<Page<DeviceRecord>> {
    this.assertOpen();
    return this.state.listDevices(filter);
  }
  async getBundle(id: string): Promise<BundleRecord | null> {
    this.assertOpen();
    return this.state.getBundle(id);
  }
  async listBundles(filter?: { group?: string } & PageQuery): Promise<Page<BundleRecord>> {
    this.assertOpen();
    return this.state.listBundles(filter);
  }
  async getGroup(name: string): Promise<GroupRecord | null> {
    this.assertOpen();
    return this.state.getGroup(name);
  }
  async listGroups(query?: PageQuery): Promise<Page<GroupRecord>> {
    this.assertOpen();
    return this.state.listGroups(query);
  }
  async listCollections(): Promise<string[]> {
    this.assertOpen();
    return this.state.listCollections();
  }
  async getRollout(id: string): Promise<StoredRollout | null> {
    this.assertOpen();
    return this.state.getRollout(id);
  }
  async listRollouts(filter?: RolloutFilter): Promise<Page<StoredRollout>> {
    this.assertOpen();
    return this.state.listRollouts(filter);
  }
  async getMembers(rolloutId: string, deviceIds: readonly string[]): Promise<Array<MemberRecord | null>> {
    this.assertOpen();
    return this.state.getMembers(rolloutId, deviceIds);
  }
  async listMembers(rolloutId: string, filter?: MemberFilter): Promise<Page<MemberRecord>> {
    this.assertOpen();
    return this.state.listMembers(rolloutId, filter);
  }
  async membershipsOf(deviceId: string): Promise<MemberRecord[]> {
    this.assertOpen();
    return this.state.membershipsOf(deviceId);
  }
  async listTelemetry(query?: PageQuery): Promise<Page<{ key: string; bucket: TelemetryBucket }>> {
    this.assertOpen();
    return this.state.listTelemetry(query);
  }
  async getCounters(): Promise<Record<string, number>> {
    this.assertOpen();
    return this.state.getCounters();
  }
  async getItem(collection: string, key: string): Promise<JsonObject | null> {
    this.assertOpen();
    return this.state.getItem(collection, key);
  }
  async getItems(collection: string, keys: readonly string[]): Promise<Array<JsonObject | null>> {
    this.assertOpen();
    return this.state.getItems(collection, keys);
  }
  async listItems(collection: string, query?: PageQuery): Promise<Page<{ key: string; value: JsonObject }>> {
    this.assertOpen();
    return this.state.listItems(collection, query);
  }
}
