/**
 * gRPC health checking (grpc.health.v1.Health, the grpc-health-check package) on the
 * aggregator's own gRPC server, so a load balancer, Kubernetes or `grpc_health_probe` asks the
 * port the agents use: SERVING for '' (the whole server) and for the agent service once the
 * server listens, NOT_SERVING before and from the moment it starts stopping.
 */
import type * as grpc from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';

export class GrpcHealth {
  private readonly impl: HealthImplementation;
  private current: ServingStatus = 'NOT_SERVING';
  readonly names: readonly string[];

  /** `services`: the full names of the server's services (e.g. distappguard.v1.AgentService) */
  constructor(services: readonly string[]) {
    this.names = ['', ...services];
    this.impl = new HealthImplementation(Object.fromEntries(this.names.map((s) => [s, 'NOT_SERVING' as ServingStatus])));
  }

  addTo(server: grpc.Server): void {
    this.impl.addToServer(server as unknown as Parameters<HealthImplementation['addToServer']>[0]);
  }

  set(status: ServingStatus): void {
    this.current = status;
    for (const s of this.names) this.impl.setStatus(s, status);
  }

  get status(): ServingStatus {
    return this.current;
  }
}
