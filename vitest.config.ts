import { defineConfig } from 'vitest/config';

// Two tiers: `unit` (pure, no I/O beyond temp dirs) and `e2e` (real hosts from `rtctl lab`, serial).
export default defineConfig({
  test: {
    projects: [
      // The unit tier includes I/O tests (a real sshd on loopback, the built CLI): generous time-outs keep them
      // stable on a loaded 2-core machine; they finish in well under a second each when it is quiet.
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000, hookTimeout: 30_000 } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
