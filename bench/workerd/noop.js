// The no-op of bench/functions/noop as a workerd module worker: parses the JSON event, answers { ok, n }.
export default {
  async fetch(request) {
    const text = await request.text();
    const event = JSON.parse(text === '' ? '{}' : text);
    return Response.json({ ok: true, n: event.n ?? 0 });
  },
};
