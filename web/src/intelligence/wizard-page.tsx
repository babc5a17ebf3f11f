// The fine-tune wizard: 1 describe what to tune (a prompt → `POST /v1/plans`), 2 review and edit the plan (checked
// with the platform's validator; an edited plan is stored with `POST /v1/plans {prompt, plan}`), 3 upload the images,
// 4 start the run with the reviewed plan's id and follow it (feedback, training, report).
// The run is an execution of the `fine-tune` workflow: its page links to the graph for those who want the detail.
import { useState } from 'react';
import type { FormEvent } from 'react';
import { maxPromptChars } from '../../../src/core/plan.js';
import { href } from '../hooks';
import type { FineTunePlan, PlanProblem, PlanView } from './ai-api';
import { createPlan, datasetIdPattern, fineTuneWorkflow, newDatasetId, startRun } from './ai-api';
import { PlanForm, planProblems } from './plan-form';
import { Upload } from './upload';

const stepNames = ['Describe', 'Review the plan', 'Upload images', 'Run'] as const;

type Message = { kind: 'ok' | 'error'; text: string } | null;

function MessageLine(props: { message: Message }) {
  const { message } = props;
  return (
    <p className={message?.kind === 'error' ? 'error' : 'ok'} role={message?.kind === 'error' ? 'alert' : 'status'}>
      {message?.text}
    </p>
  );
}

export function WizardPage() {
  const [step, setStep] = useState(0);
  const [prompt, setPrompt] = useState('');
  const [planView, setPlanView] = useState<PlanView | null>(null);
  const [plan, setPlan] = useState<FineTunePlan | null>(null);
  const [problems, setProblems] = useState<PlanProblem[]>([]);
  const [checked, setChecked] = useState<boolean | null>(null);
  /** The stored plan the run will use: the planner's, or the user's edit once saved; null: edited, not saved yet. */
  const [planId, setPlanId] = useState<string | null>(null);
  const [datasetId, setDatasetId] = useState(newDatasetId);
  const [uploaded, setUploaded] = useState(0);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<Message>(null);

  const plan1 = async (event: FormEvent) => {
    event.preventDefault();
    if (prompt.trim() === '') {
      setMessage({ kind: 'error', text: 'Describe what to fine-tune first.' });
      return;
    }
    setBusy(true);
    setMessage(null);
    try {
      const view = await createPlan(prompt);
      setPlanView(view);
      setPlan(view.plan);
      setProblems(view.problems);
      setChecked(null);
      setPlanId(view.status === 'SUCCESS' ? view.id : null);
      setStep(1);
    } catch (err) {
      setMessage({ kind: 'error', text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };

  const check = (): boolean => {
    if (plan === null) return false;
    const found = planProblems(plan);
    setProblems(found);
    setChecked(found.length === 0);
    return found.length === 0;
  };

  /** Checks the plan and, when it was edited, stores the edit; then on to the images. */
  const next = async () => {
    if (plan === null || !check()) return;
    if (planId !== null) {
      setStep(2);
      return;
    }
    setBusy(true);
    setMessage(null);
    try {
      const saved = await createPlan(prompt, plan);
      setPlanId(saved.id);
      setStep(2);
    } catch (err) {
      setMessage({ kind: 'error', text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };

  const start = async () => {
    if (planId === null) return;
    setBusy(true);
    setMessage(null);
    try {
      const run = await startRun(prompt, datasetId, planId);
      window.location.hash = href('fine-tune', run.id);
    } catch (err) {
      setMessage({ kind: 'error', text: err instanceof Error ? err.message : String(err) });
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="wizard-title" className="fine-tune">
      <div className="title-row">
        <h1 id="wizard-title">Fine-tune</h1>
        <a href={href('workflows', fineTuneWorkflow)}>Open in workflow editor</a>
      </div>
      <ol className="wizard-steps" aria-label="Steps">
        {stepNames.map((name, i) => (
          <li
            key={name}
            className={i === step ? 'current' : i < step ? 'done' : undefined}
            aria-current={i === step ? 'step' : undefined}
          >
            {i + 1}. {name}
          </li>
        ))}
      </ol>

      {step === 0 && (
        <form onSubmit={(event) => void plan1(event)} className="wizard-panel">
          <label htmlFor="ft-prompt">What should the model learn?</label>
          <textarea
            id="ft-prompt"
            rows={4}
            value={prompt}
            maxLength={maxPromptChars}
            placeholder="Fine-tune Stable Diffusion on photos of my dog Fluffy, in watercolour"
            onChange={(e) => setPrompt(e.target.value)}
          />
          <div className="row">
            <button type="submit" className="primary" disabled={busy}>
              {busy ? 'Planning…' : 'Plan it'}
            </button>
          </div>
        </form>
      )}

      {step === 1 && planView !== null && (
        <div className="wizard-panel">
          <p>
            Planned by <strong>{planView.planner}</strong> in {planView.processingMs} ms:{' '}
            <span className={planView.status === 'SUCCESS' ? 'ok' : 'error'}>{planView.status}</span>{' '}
            <span className="muted">({planView.id})</span>
          </p>
          {planView.warnings.length > 0 && (
            <div className="warning">
              <p>What the planner could not tell from the prompt, and filled in:</p>
              <ul aria-label="Plan warnings">
                {planView.warnings.map((w) => (
                  <li key={w}>{w}</li>
                ))}
              </ul>
            </div>
          )}
          {problems.length > 0 && (
            <ul className="error" aria-label="Plan problems" role="alert">
              {problems.map((p) => (
                <li key={`${p.path} ${p.message}`}>
                  <code>{p.path}</code>: {p.message}
                </li>
              ))}
            </ul>
          )}
          {plan !== null ? (
            <PlanForm
              plan={plan}
              problems={problems}
              onChange={(edited) => {
                setPlan(edited);
                setChecked(null);
                setPlanId(null);
              }}
            />
          ) : (
            <p>No plan came back: change the prompt and plan again.</p>
          )}
          {checked === true && (
            <p className="ok" role="status">
              The plan passes every rule.
            </p>
          )}
          <div className="row">
            <button type="button" onClick={() => setStep(0)}>
              Back
            </button>
            <button type="button" disabled={plan === null} onClick={() => check()}>
              Check plan
            </button>
            <button type="button" className="primary" disabled={plan === null || busy} onClick={() => void next()}>
              {planId === null && plan !== null ? 'Save the plan, next: images' : 'Next: images'}
            </button>
          </div>
        </div>
      )}

      {step === 2 && (
        <div className="wizard-panel">
          <label>
            Dataset{' '}
            <input
              value={datasetId}
              readOnly={uploaded > 0}
              aria-invalid={!datasetIdPattern.test(datasetId)}
              onChange={(e) => setDatasetId(e.target.value)}
            />
          </label>
          {plan !== null && (
            <p className="muted">
              The plan asks for at least {plan.dataset.min_images} images ({plan.dataset.recommended_images}{' '}
              recommended).
            </p>
          )}
          {datasetIdPattern.test(datasetId) ? (
            <Upload datasetId={datasetId} onUploaded={setUploaded} />
          ) : (
            <p className="error">A dataset id is lowercase letters, digits and dashes (up to 63).</p>
          )}
          <div className="row">
            <button type="button" onClick={() => setStep(1)}>
              Back
            </button>
            <button type="button" className="primary" disabled={uploaded === 0} onClick={() => setStep(3)}>
              Next: run ({uploaded} uploaded)
            </button>
          </div>
        </div>
      )}

      {step === 3 && (
        <div className="wizard-panel">
          <p>
            The run follows the plan <code>{planId}</code>
            {planView !== null && planId !== planView.id ? ' (your edit)' : ''}, embeds and samples the {uploaded}{' '}
            images of <code>{datasetId}</code>, then asks for your verdict on a few of them before it trains.
          </p>
          <div className="row">
            <button type="button" onClick={() => setStep(2)}>
              Back
            </button>
            <button type="button" className="primary" disabled={busy || planId === null} onClick={() => void start()}>
              {busy ? 'Starting…' : 'Start the run'}
            </button>
          </div>
        </div>
      )}
      <MessageLine message={message} />
    </section>
  );
}
