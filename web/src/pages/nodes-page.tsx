// Nodes: each node's capacity, sandboxes, stem cells and enforcement (`GET /v1/nodes`), and the cluster's leader and
// routing table (`GET /v1/cluster`).
import type { ClusterView, NodeView } from '../api';
import { useApi } from '../hooks';

export function NodesPage() {
  const nodes = useApi<{ nodes: NodeView[] }>('/v1/nodes', 10_000);
  const cluster = useApi<ClusterView>('/v1/cluster', 10_000);
  const routing = cluster.data?.routing ?? null;
  return (
    <section aria-labelledby="nodes-title">
      <h1 id="nodes-title">Nodes</h1>
      {cluster.error !== null && (
        <p className="warning" role="status">
          The cluster view is not available: {cluster.error}
        </p>
      )}
      {cluster.data !== null && (
        <p data-testid="cluster-mode">
          Mode: <strong>{cluster.data.mode}</strong> · Leader:{' '}
          {cluster.data.leader === null ? (
            <span className="muted">none</span>
          ) : (
            <>
              <code>{cluster.data.leader.id}</code> since {new Date(cluster.data.leader.since).toLocaleString()}
            </>
          )}
        </p>
      )}
      {nodes.error !== null && (
        <p className="error" role="alert">
          {nodes.error}
        </p>
      )}
      {nodes.data !== null && nodes.data.nodes.length === 0 && <p className="muted">No nodes have joined.</p>}
      <div className="cards">
        {(nodes.data?.nodes ?? []).map((node) => (
          <article key={node.nodeId} className="card" aria-labelledby={`node-${node.nodeId}`}>
            <h2 id={`node-${node.nodeId}`}>
              <code>{node.nodeId}</code>{' '}
              <span className={`badge badge-${node.status === 'ready' ? 'active' : 'errors'}`}>{node.status}</span>
            </h2>
            <dl className="config">
              <div>
                <dt>Sandboxes</dt>
                <dd>
                  {node.capacity === undefined ? (
                    node.sandboxes
                  ) : (
                    <>
                      {node.sandboxes} of {node.capacity}
                      <progress max={Math.max(1, node.capacity)} value={node.sandboxes} aria-label="Sandboxes in use" />
                    </>
                  )}
                </dd>
              </div>
              <div>
                <dt>Runtime</dt>
                <dd>
                  {node.sandboxRuntime}
                  {node.isolating ? ' (isolating)' : ' (not isolating)'}
                </dd>
              </div>
              <div>
                <dt>Stem cells</dt>
                <dd>
                  {node.stemCells.idle} idle, {node.stemCells.starting} starting
                </dd>
              </div>
              <div>
                <dt>Memory</dt>
                <dd>
                  {Math.round(node.budget.usedMemoryMB)} of {Math.round(node.budget.memoryMB)} MB
                </dd>
              </div>
              <div>
                <dt>Processes</dt>
                <dd>
                  {node.budget.usedPids} of {node.budget.pids}
                </dd>
              </div>
              {node.routed !== undefined && (
                <div>
                  <dt>Routed</dt>
                  <dd>{node.routed ? 'yes' : 'no'}</dd>
                </div>
              )}
              {node.agentAddress !== undefined && (
                <div>
                  <dt>Agent</dt>
                  <dd>
                    <code>{node.agentAddress}</code>
                  </dd>
                </div>
              )}
            </dl>
            <table className="compact enforcement">
              <caption>Enforcement</caption>
              <thead>
                <tr>
                  <th scope="col">Limit</th>
                  <th scope="col">Mechanism</th>
                  <th scope="col">Enforced</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(node.enforcement).map(([aspect, rule]) => (
                  <tr key={aspect} title={rule.note}>
                    <th scope="row">{aspect}</th>
                    <td>{rule.mechanism ?? '–'}</td>
                    <td className={rule.enforced === true ? 'ok' : 'warning'}>
                      {rule.enforced === true ? 'yes' : 'no'}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {node.warnings.length > 0 && (
              <ul className="warning">
                {node.warnings.map((w) => (
                  <li key={w}>{w}</li>
                ))}
              </ul>
            )}
          </article>
        ))}
      </div>
      <section aria-labelledby="routing-title">
        <h2 id="routing-title">Routing table</h2>
        {routing === null ? (
          <p className="muted">
            No routing table{cluster.data?.mode === 'embedded' ? ': embedded mode runs every function here' : ''}.
          </p>
        ) : (
          <>
            <p>
              Version <strong data-testid="routing-version">{routing.version}</strong>, updated{' '}
              {new Date(routing.updatedAt).toLocaleString()}
            </p>
            <table className="compact">
              <thead>
                <tr>
                  <th scope="col">Function</th>
                  <th scope="col">Version</th>
                  <th scope="col">Nodes</th>
                </tr>
              </thead>
              <tbody>
                {routing.entries.map((entry) => (
                  <tr key={`${entry.functionName}@${entry.version}`}>
                    <th scope="row">{entry.functionName}</th>
                    <td>v{entry.version}</td>
                    <td>{entry.nodes.join(', ')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </section>
    </section>
  );
}
