import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // live tracing tests spawn strace/bpftrace; two cores, so keep files from piling up
    maxWorkers: 2,
  },
});
