// Must be imported before uvu: suites are queued and run by tests/run.ts instead of on their own.
(globalThis as unknown as { UVU_DEFER: number }).UVU_DEFER = 1;
(globalThis as unknown as { UVU_QUEUE: unknown[][] }).UVU_QUEUE = [];
