// /admin: the hub. After sign-in it shows where to go and whether the service is healthy.
'use strict';

KL.start(async () => {
  const line = KL.$('#health');
  try {
    const health = await fetch('/health', { cache: 'no-store', credentials: 'omit' }).then((r) => r.json());
    line.textContent = `Service: database ${health.database}, schema version ${health.schema_version}, keyledger ${health.version}.`;
  } catch (e) {
    line.textContent = `Service health unknown: ${e.message}`;
  }
});
