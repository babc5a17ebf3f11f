exports.handler = async (event) => ({ ok: true, n: event.n ?? 0 });
