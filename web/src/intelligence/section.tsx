// The fine-tune pages, loaded on demand: #/fine-tune (the wizard) and #/fine-tune/RUN (a run, live).
import './intelligence.css';
import { href } from '../hooks';
import { RunPanel } from './run-view';
import { WizardPage } from './wizard-page';

export default function IntelligenceSection(props: { route: string[] }) {
  const [, run] = props.route;
  if (run === undefined) return <WizardPage />;
  return (
    <section aria-labelledby="fine-tune-run-title" className="fine-tune">
      <p className="crumbs">
        <a href={href('fine-tune')}>Fine-tune</a> /
      </p>
      <h1 id="fine-tune-run-title">Fine-tune run</h1>
      <RunPanel key={run} id={run} />
    </section>
  );
}
