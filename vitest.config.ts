import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // One real control plane, test Unix users and the sudoers rule for the whole run; the package build
          // in the background when package.test is in the run.
          globalSetup: ['test/support/global-setup.ts', 'test/support/package-artifacts.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        // Other Kubernetes versions, each its own control plane built once (many minutes cold): scripts/matrix.sh.
        test: {
          name: 'matrix',
          include: ['test/matrix/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 1_800_000,
        },
      },
    ],
  },
});
