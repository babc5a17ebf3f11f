// The echo worker: answers with the request's body as it is.
export default {
  async fetch(request) {
    return new Response(request.body, { headers: { 'content-type': 'application/json' } });
  },
};
