// The console's shell: the login form where the API asks for a key, the navigation, and the page of the route.
import { Suspense, lazy, useEffect, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import { ApiError, currentKey, keysRequired, onUnauthorized, request, setKey } from './api';
import { href, useRoute } from './hooks';
import { FunctionPage } from './pages/function-page';
import { FunctionsPage } from './pages/functions-page';
import { NodesPage } from './pages/nodes-page';

// The workflow pages carry the graph library: loaded on first visit, so the functions pages do not pay for it.
const WorkflowSection = lazy(() => import('./workflows/section'));
// The fine-tune wizard carries the plan's validator and its own pages: loaded on first visit too.
const IntelligenceSection = lazy(() => import('./intelligence/section'));

type Auth = { state: 'checking' } | { state: 'login'; message: string | null } | { state: 'in'; keys: boolean };

export function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });

  useEffect(() => {
    let live = true;
    void (async () => {
      const required = await keysRequired();
      if (!live) return;
      if (!required) setAuth({ state: 'in', keys: false });
      else if (currentKey() === null) setAuth({ state: 'login', message: null });
      else setAuth({ state: 'in', keys: true });
    })();
    const off = onUnauthorized((message) => {
      setKey(null);
      setAuth({ state: 'login', message: `Signed out: ${message}` });
    });
    return () => {
      live = false;
      off();
    };
  }, []);

  if (auth.state === 'checking')
    return (
      <p className="loading" role="status">
        Loading…
      </p>
    );
  if (auth.state === 'login') {
    return <Login message={auth.message} onIn={() => setAuth({ state: 'in', keys: true })} />;
  }
  return (
    <Shell
      keys={auth.keys}
      onSignOut={() => {
        setKey(null);
        setAuth({ state: 'login', message: 'Signed out.' });
      }}
    />
  );
}

function Login(props: { message: string | null; onIn: () => void }) {
  const [key, setKeyText] = useState('');
  const [error, setError] = useState<string | null>(props.message);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (trimmed === '') {
      setError('Enter an API key.');
      return;
    }
    setBusy(true);
    try {
      await request('/v1/functions', { key: trimmed });
      setKey(trimmed);
      props.onIn();
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? 'That API key was refused.'
          : `Could not sign in: ${err instanceof Error ? err.message : String(err)}`,
      );
      setBusy(false);
      input.current?.focus();
    }
  };
  return (
    <main className="login">
      <form onSubmit={(event) => void submit(event)} aria-labelledby="login-title">
        <h1 id="login-title">Savassan console</h1>
        <p className="muted">This platform needs an API key. It is kept for this browser tab only.</p>
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          ref={input}
          type="password"
          autoComplete="current-password"
          value={key}
          onChange={(event) => setKeyText(event.target.value)}
          aria-describedby={error === null ? undefined : 'login-error'}
          aria-invalid={error !== null}
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p id="login-error" className="error" role="alert">
          {error}
        </p>
      </form>
    </main>
  );
}

function Shell(props: { keys: boolean; onSignOut: () => void }) {
  const route = useRoute();
  const heading = useRef<HTMLElement>(null);
  const [first, ...rest] = route;
  const section = first ?? 'functions';
  const routeKey = route.join('/');
  const initial = useRef(true);
  // After navigating, move the focus to the new page (its main region), so a screen reader starts there.
  useEffect(() => {
    if (initial.current) {
      initial.current = false;
      return;
    }
    heading.current?.focus();
  }, [routeKey]);

  let page;
  if (section === 'functions' && rest[0] !== undefined)
    page = <FunctionPage name={rest[0]} tab={rest[1] ?? 'overview'} detail={rest[2]} />;
  else if (section === 'functions') page = <FunctionsPage />;
  else if (section === 'nodes') page = <NodesPage />;
  else if (section === 'workflows' || section === 'executions')
    page = (
      <Suspense
        fallback={
          <p className="loading" role="status">
            Loading…
          </p>
        }
      >
        <WorkflowSection route={route} />
      </Suspense>
    );
  else if (section === 'fine-tune')
    page = (
      <Suspense
        fallback={
          <p className="loading" role="status">
            Loading…
          </p>
        }
      >
        <IntelligenceSection route={route} />
      </Suspense>
    );
  else
    page = (
      <p role="alert">
        No page here. Go to the <a href={href('functions')}>functions</a>.
      </p>
    );

  return (
    <>
      <a
        className="skip"
        href="#main"
        onClick={(event) => {
          event.preventDefault();
          heading.current?.focus();
        }}
      >
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Savassan</span>
        <nav aria-label="Sections">
          <a href={href('functions')} aria-current={section === 'functions' ? 'page' : undefined}>
            Functions
          </a>
          <a
            href={href('workflows')}
            aria-current={section === 'workflows' || section === 'executions' ? 'page' : undefined}
          >
            Workflows
          </a>
          <a href={href('fine-tune')} aria-current={section === 'fine-tune' ? 'page' : undefined}>
            Fine-tune
          </a>
          <a href={href('nodes')} aria-current={section === 'nodes' ? 'page' : undefined}>
            Nodes
          </a>
        </nav>
        {props.keys && (
          <button type="button" className="link" onClick={props.onSignOut}>
            Sign out
          </button>
        )}
      </header>
      <main id="main" ref={heading} tabIndex={-1}>
        {page}
      </main>
    </>
  );
}
