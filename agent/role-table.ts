/**
 * Interns roles: each distinct key gets one Role object with a dense index, so the hot
 * path keys edges by small integers and builds no strings (labels are made once per role).
 */
import { roleId, type RoleKind, type RoleSpec } from './roles.js';

export interface Role {
  readonly idx: number;
  readonly id: string;
  readonly kind: RoleKind;
  readonly label: string;
}

export class RoleTable {
  private readonly byKey = new Map<string, Role>();
  readonly all: Role[] = [];

  intern(spec: RoleSpec): Role {
    let r = this.byKey.get(spec.key);
    if (!r) {
      r = { idx: this.all.length, id: roleId(spec.key), kind: spec.kind, label: spec.label };
      this.byKey.set(spec.key, r);
      this.all.push(r);
    }
    return r;
  }

  get size(): number {
    return this.all.length;
  }
}
