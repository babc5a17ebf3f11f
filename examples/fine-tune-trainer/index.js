// The CPU trainer of the `fine-tune` workflow: a linear probe (logistic regression) on the curated images'
// embeddings, wanted (1) against not wanted (0). Plain Node, no dependencies.
//
// Event:  {plan, curatedDatasetUri, trainingSet: {dimensions, items: [{imageId, label: 1|0, embedding: number[]}]}}
// Result: {model: {weights, bias, dimensions}, metrics: {trainAccuracy, loss, examples, heldOutAccuracy,
//          heldOutExamples, learningRate, steps, positives, negatives, warnings}, heldOut: [imageId...]}
//
// The plan's learning rate and steps are for a diffusion model; the probe scales them: learning rate
// clamp(plan.learning_rate / 1e-4, 0.01, 1) on standardised features, steps clamp(plan.train_steps, 100, 2000) of
// full-batch gradient descent. With at least 10 examples and 2 of each label, every 5th example of each label is
// held out and scored (heldOutAccuracy); otherwise heldOutAccuracy is null. Classes are weighted to balance.

const l2 = 1e-3;

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

function fail(message) {
  const error = new Error(message);
  error.name = 'InvalidTrainingSet';
  throw error;
}

function readSet(event) {
  const set = event && event.trainingSet;
  if (!set || !Array.isArray(set.items)) fail('the event needs trainingSet: {dimensions, items}');
  const dimensions = set.dimensions;
  if (!Number.isInteger(dimensions) || dimensions < 1) fail('trainingSet.dimensions must be a positive integer');
  set.items.forEach((item, i) => {
    if (item.label !== 0 && item.label !== 1) fail(`item ${i}: label must be 1 or 0`);
    if (!Array.isArray(item.embedding) || item.embedding.length !== dimensions) {
      fail(`item ${i}: embedding must have ${dimensions} numbers`);
    }
  });
  if (set.items.length === 0) fail('the training set is empty: no image was accepted or rejected');
  return { dimensions, items: set.items };
}

function hyperparameters(plan) {
  const h = (plan && plan.hyperparameters) || {};
  const learningRate = typeof h.learning_rate === 'number' ? clamp(h.learning_rate / 1e-4, 0.01, 1) : 0.5;
  const steps = typeof h.train_steps === 'number' ? Math.round(clamp(h.train_steps, 100, 2000)) : 500;
  return { learningRate, steps };
}

/** Every 5th example of each label is held out when there are at least 10 and 2 of each label. */
function split(items) {
  const positives = items.filter((item) => item.label === 1);
  const negatives = items.filter((item) => item.label === 0);
  if (items.length < 10 || positives.length < 2 || negatives.length < 2) return { train: items, heldOut: [] };
  const heldOut = new Set();
  for (const group of [positives, negatives]) group.forEach((item, i) => i % 5 === 4 && heldOut.add(item));
  return { train: items.filter((item) => !heldOut.has(item)), heldOut: items.filter((item) => heldOut.has(item)) };
}

function sigmoid(z) {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

function score(model, embedding) {
  let z = model.bias;
  for (let i = 0; i < model.dimensions; i += 1) z += model.weights[i] * embedding[i];
  return z;
}

function accuracy(model, items) {
  if (items.length === 0) return null;
  const right = items.filter((item) => (score(model, item.embedding) >= 0 ? 1 : 0) === item.label).length;
  return right / items.length;
}

/** Trains the probe; the model's weights apply to the raw embeddings (the standardisation is folded in). */
function train(event) {
  const { dimensions, items } = readSet(event);
  const { learningRate, steps } = hyperparameters(event.plan);
  const { train: examples, heldOut } = split(items);
  const n = examples.length;
  const warnings = [];
  const positives = examples.filter((item) => item.label === 1).length;
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) {
    warnings.push('the training set has one label only: the probe learns that label for every image');
  }
  // Standardise each dimension over the training examples.
  const mean = new Float64Array(dimensions);
  const scale = new Float64Array(dimensions);
  for (const item of examples) for (let d = 0; d < dimensions; d += 1) mean[d] += item.embedding[d] / n;
  for (const item of examples) {
    for (let d = 0; d < dimensions; d += 1) scale[d] += (item.embedding[d] - mean[d]) ** 2 / n;
  }
  for (let d = 0; d < dimensions; d += 1) scale[d] = Math.sqrt(scale[d]) < 1e-8 ? 1 : Math.sqrt(scale[d]);
  const x = examples.map((item) => Float64Array.from(item.embedding, (v, d) => (v - mean[d]) / scale[d]));
  const y = examples.map((item) => item.label);
  // Balanced class weights: each label counts as half of the loss.
  const weightOf = (label) =>
    positives === 0 || negatives === 0 ? 1 : n / (2 * (label === 1 ? positives : negatives));
  const w = new Float64Array(dimensions);
  let b = 0;
  let loss = 0;
  const gradient = new Float64Array(dimensions);
  for (let step = 0; step < steps; step += 1) {
    gradient.fill(0);
    let gradientBias = 0;
    loss = 0;
    for (let i = 0; i < n; i += 1) {
      let z = b;
      for (let d = 0; d < dimensions; d += 1) z += w[d] * x[i][d];
      const p = sigmoid(z);
      const weight = weightOf(y[i]);
      const error = (p - y[i]) * weight;
      for (let d = 0; d < dimensions; d += 1) gradient[d] += error * x[i][d];
      gradientBias += error;
      loss -= weight * (y[i] === 1 ? Math.log(Math.max(p, 1e-12)) : Math.log(Math.max(1 - p, 1e-12)));
    }
    for (let d = 0; d < dimensions; d += 1) w[d] -= learningRate * (gradient[d] / n + l2 * w[d]);
    b -= learningRate * (gradientBias / n);
    loss /= n;
  }
  // Fold the standardisation into the weights: w·((e - mean) / scale) + b = (w / scale)·e + (b - Σ w·mean / scale).
  const weights = Array.from(w, (v, d) => v / scale[d]);
  let bias = b;
  for (let d = 0; d < dimensions; d += 1) bias -= (w[d] * mean[d]) / scale[d];
  const model = { weights, bias, dimensions };
  return {
    model,
    metrics: {
      trainAccuracy: accuracy(model, examples),
      loss,
      examples: n,
      heldOutAccuracy: accuracy(model, heldOut),
      heldOutExamples: heldOut.length,
      learningRate,
      steps,
      positives,
      negatives,
      warnings,
    },
    heldOut: heldOut.map((item) => item.imageId),
  };
}

exports.train = train;

exports.handler = async (event) => {
  const result = train(event);
  const m = result.metrics;
  console.log(
    `trained a linear probe on ${m.examples} examples (${m.positives} wanted, ${m.negatives} not) of ${result.model.dimensions} dimensions: ${m.steps} steps at learning rate ${m.learningRate}, loss ${m.loss.toFixed(4)}, train accuracy ${m.trainAccuracy}, held-out accuracy ${m.heldOutAccuracy}`,
  );
  for (const warning of m.warnings) console.log(`warning: ${warning}`);
  return result;
};
