// The workflow pages, loaded on demand (the graph library stays out of the functions pages' bundle):
// #/workflows, #/workflows/new, #/workflows/NAME[/v/N|/edit], #/executions/PROJECT/DOMAIN/NAME.
import './workflows.css';
import { EditWorkflowPage, NewWorkflowPage } from './compose-page';
import { ExecutionPage } from './execution-page';
import { WorkflowPage } from './workflow-page';
import { WorkflowsPage } from './workflows-page';

export default function WorkflowSection(props: { route: string[] }) {
  const [section, a, b, c] = props.route;
  if (section === 'executions' && a !== undefined && b !== undefined && c !== undefined)
    return <ExecutionPage key={`${a}/${b}/${c}`} id={{ project: a, domain: b, name: c }} />;
  if (a === undefined) return <WorkflowsPage />;
  if (a === 'new' && b === undefined) return <NewWorkflowPage />;
  if (b === 'edit') return <EditWorkflowPage key={a} name={a} />;
  if (b === 'v' && c !== undefined && /^\d+$/.test(c))
    return <WorkflowPage key={`${a}@${c}`} name={a} version={Number(c)} />;
  return <WorkflowPage key={a} name={a} />;
}
