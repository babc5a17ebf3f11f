// Upload images into a dataset: dropped on the zone or picked with the file picker, sent one at a time
// (`POST /v1/datasets/{id}/images?name=FILE`), each with its own result line.
import { useRef, useState } from 'react';
import type { DragEvent } from 'react';
import { uploadImage, uploadName } from './ai-api';

/** Largest image the upload path takes. */
const maxImageBytes = 25 * 1024 * 1024;

export interface UploadResult {
  name: string;
  state: 'waiting' | 'uploading' | 'done' | 'failed';
  message: string;
}

export function Upload(props: { datasetId: string; onUploaded: (count: number) => void }) {
  const [results, setResults] = useState<UploadResult[]>([]);
  const [over, setOver] = useState(false);
  const picker = useRef<HTMLInputElement>(null);
  const queue = useRef<Promise<void>>(Promise.resolve());
  const uploaded = useRef(0);

  const setResult = (index: number, change: Partial<UploadResult>) =>
    setResults((old) => old.map((r, i) => (i === index ? { ...r, ...change } : r)));

  const count = useRef(0);
  const add = (files: FileList | File[]) => {
    const list = Array.from(files);
    if (list.length === 0) return;
    const start = count.current;
    count.current += list.length;
    setResults((old) => [
      ...old,
      ...list.map((file) => ({ name: uploadName(file.name), state: 'waiting' as const, message: '' })),
    ]);
    // One upload at a time, in the order given: the server's memory and the user's bandwidth are shared.
    list.forEach((file, i) => {
      queue.current = queue.current.then(() => send(start + i, file));
    });
  };

  const send = async (index: number, file: File) => {
    const name = uploadName(file.name);
    if (file.size > maxImageBytes) {
      setResult(index, { state: 'failed', message: `larger than ${maxImageBytes / 1024 / 1024} MiB` });
      return;
    }
    setResult(index, { state: 'uploading', message: 'uploading…' });
    try {
      const image = await uploadImage(props.datasetId, name, file);
      uploaded.current += 1;
      props.onUploaded(uploaded.current);
      setResult(index, { state: 'done', message: `${(image.bytes / 1024).toFixed(1)} KiB, ${image.imageId}` });
    } catch (err) {
      setResult(index, { state: 'failed', message: err instanceof Error ? err.message : String(err) });
    }
  };

  const drop = (event: DragEvent) => {
    event.preventDefault();
    setOver(false);
    add(event.dataTransfer.files);
  };

  return (
    <div className="upload">
      <div
        className={`drop-zone${over ? ' over' : ''}`}
        data-testid="drop-zone"
        onDragOver={(event) => {
          event.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={drop}
      >
        <p>Drop images here, or</p>
        <button type="button" onClick={() => picker.current?.click()}>
          Choose images…
        </button>
        <input
          ref={picker}
          type="file"
          accept="image/*"
          multiple
          hidden
          aria-label="Images to upload"
          onChange={(event) => {
            if (event.target.files !== null) add(event.target.files);
            event.target.value = '';
          }}
        />
      </div>
      {results.length > 0 && (
        <table className="compact upload-results" aria-label="Uploads">
          <thead>
            <tr>
              <th>File</th>
              <th>Result</th>
            </tr>
          </thead>
          <tbody>
            {results.map((r, i) => (
              <tr key={i} data-state={r.state}>
                <td>{r.name}</td>
                <td className={r.state === 'failed' ? 'error' : r.state === 'done' ? 'ok' : 'muted'}>
                  {r.state === 'done'
                    ? `uploaded: ${r.message}`
                    : r.state === 'failed'
                      ? `failed: ${r.message}`
                      : r.message || 'waiting'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
