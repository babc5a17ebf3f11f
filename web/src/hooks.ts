// Small hooks: the hash route, and data loaded from the API with its error kept for the page to show in place.
import { useCallback, useEffect, useRef, useState } from 'react';
import { getJson } from './api';

/** The route: the part of the URL after `#/`, split in segments (`#/functions/hello` → ['functions', 'hello']). */
export function useRoute(): string[] {
  const read = () =>
    window.location.hash
      .replace(/^#\/?/, '')
      .split('/')
      .filter((segment) => segment !== '')
      .map((segment) => {
        try {
          return decodeURIComponent(segment);
        } catch {
          return segment;
        }
      });
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  return route;
}

export function href(...segments: string[]): string {
  return `#/${segments.map(encodeURIComponent).join('/')}`;
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/**
 * GETs `path` (null: nothing yet), again on `reload()` and every `refreshMs` when given. `load` reads it another way
 * (e.g. page after page); it must be a stable function.
 */
export function useApi<T>(
  path: string | null,
  refreshMs?: number,
  load: (path: string, options: { signal: AbortSignal }) => Promise<T> = getJson<T>,
): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(path !== null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  const lastPath = useRef(path);
  useEffect(() => {
    if (path === null) return;
    if (lastPath.current !== path) {
      lastPath.current = path;
      setData(null);
    }
    const abort = new AbortController();
    setLoading(true);
    load(path, { signal: abort.signal }).then(
      (value) => {
        setData(value);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (abort.signal.aborted) return;
        setError(err instanceof Error ? err.message : String(err));
        setLoading(false);
      },
    );
    return () => abort.abort();
  }, [path, tick, load]);
  useEffect(() => {
    if (refreshMs === undefined || path === null) return;
    const timer = setInterval(reload, refreshMs);
    return () => clearInterval(timer);
  }, [refreshMs, path, reload]);
  return { data, error, loading, reload };
}
