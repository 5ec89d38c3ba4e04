/**
 * The LTE core testbed's programs (workload/epc/*.c), compiled on first use with the
 * machine's C compiler by the same builder as the ground-truth workload, into a cache folder
 * named by the sources' hash.
 */
import { join } from 'node:path';
import { buildPrograms } from '../../cli/workload.js';
import { projectRoot } from '../../shared/project-root.js';

export interface EpcBinaries {
  enb: string;
  mme: string;
  hss: string;
  sgw: string;
  pgw: string;
  /** the attacker's gateway of the SGW IP modification attack (not part of the EPC) */
  rogueGw: string;
}

const PROGRAMS = { enb: 'epc-enb', mme: 'epc-mme', hss: 'epc-hss', sgw: 'epc-sgw', pgw: 'epc-pgw', rogueGw: 'epc-rogue-gw' } as const;

export function buildEpc(cacheDir?: string): EpcBinaries {
  const programs = Object.values(PROGRAMS);
  const p = buildPrograms({
    tag: 'epc',
    srcDir: join(projectRoot(), 'workload', 'epc'),
    sources: ['epc.h', ...programs.map((n) => `${n}.c`)],
    programs,
    cacheDir,
  });
  return Object.fromEntries(Object.entries(PROGRAMS).map(([k, n]) => [k, p[n]])) as unknown as EpcBinaries;
}
