import { defineConfig } from 'vitest/config';

// Two tiers: `unit` (pure, no I/O beyond temp dirs) and `e2e` (real hosts from `rtctl lab`, serial).
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
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
