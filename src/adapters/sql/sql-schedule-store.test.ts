import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isPlatformError } from '../../core/errors.js';
import { compileScheduleInput } from '../../core/schedule-rules.js';
import { openSqliteMetadataStore } from '../sqlite/sqlite-metadata-store.js';
import { SqlScheduleStore } from './sql-schedule-store.js';

it('refuses a schedule beyond the most a platform holds, with 429 naming the limit', async () => {
  const metadata = await openSqliteMetadataStore(':memory:');
  try {
    const schedules = new SqlScheduleStore(metadata.shared(), { maxSchedules: 2 });
    const input = (name: string) =>
      compileScheduleInput({ name, functionName: 'alpha', rate: 'rate(1 minute)' }, new Date());
    await schedules.create(input('one'));
    await schedules.create(input('two'));
    await assert.rejects(
      schedules.create(input('three')),
      (err: unknown) => isPlatformError(err, 'TOO_MANY_REQUESTS') && /2 schedules already/.test(err.message),
    );
    await schedules.delete('one');
    await schedules.create(input('three'));
  } finally {
    await metadata.close();
  }
});
