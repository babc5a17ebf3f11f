// A canary that fails every call: the bench's rollback-propagation section rolls it back.
exports.handler = async () => {
  throw new Error('this version always fails');
};
