// vb.marketplace against the live server: a directory submitted (its context without .git and what
// .dockerignore leaves out, as the server stored it), listed, read, cancelled; the parts form;
// validation errors as the SDK's classes, the context's size checked before sending; wait()
// following the build log to a failure; the catalogue (search, show, reviews only after a use, yank
// and pins, deprecation, featuring) on versions taken through the pipeline's real services with
// manage.py (no build: an image the server has).
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  BuildContextTooLargeError,
  IgnoreRules,
  InvalidBuildContextError,
  InvalidTemplateYamlError,
  ReviewNotAllowedError,
  SubmissionFailedError,
  SubmissionNotFoundError,
  SubmissionStateError,
  TemplateNotFoundError,
  TemplateVersionYankedError,
  ValidationError,
  VibeBox,
} from '../src/index.js';
import { API_KEY, API_URL, cleanupLater, manage, uniqueName } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });
let root = '';

async function templateDir(name: string, version = '1.0.0', base = 'debian:trixie'): Promise<string> {
  const dir = path.join(root, `${name}-${version}`);
  await fs.mkdir(path.join(dir, 'src'), { recursive: true });
  await fs.mkdir(path.join(dir, 'node_modules', 'left-pad'), { recursive: true });
  await fs.mkdir(path.join(dir, '.git'), { recursive: true });
  await fs.writeFile(path.join(dir, 'Dockerfile'), `FROM ${base}\nCOPY src /opt/app\n`);
  await fs.writeFile(
    path.join(dir, 'template.yaml'),
    `name: ${name}\nversion: "${version}"\ndescription: ${name}, a TS SDK test template\ntags: [ts-test]\n` +
      `languages: [python]\nreadme: README.md\nsmoke: "true"\n`,
  );
  await fs.writeFile(path.join(dir, 'README.md'), `# ${name}\n`);
  await fs.writeFile(path.join(dir, 'src', 'app.py'), "print('hi')\n");
  await fs.writeFile(path.join(dir, 'src', 'debug.log'), 'noise\n');
  await fs.writeFile(path.join(dir, 'node_modules', 'left-pad', 'index.js'), 'module.exports = 1;\n');
  await fs.writeFile(path.join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  await fs.writeFile(path.join(dir, '.dockerignore'), 'node_modules\n**/*.log\n');
  return dir;
}

function shell(code: string): Promise<string> {
  return manage('shell', '-c', `from apps.marketplace import services\n${code}`);
}

async function passPipeline(id: string, image: string): Promise<void> {
  await shell(
    `sid = ${JSON.stringify(id)}\n` +
      'assert services.submission_start(sid) is not None\n' +
      "services.submission_log_append(sid, 'Step 1/2 : FROM x\\n')\n" +
      `services.submission_progress(sid, state='smoke_testing', image=${JSON.stringify(image)}, image_size=1234, build_seconds=1.5)\n` +
      'services.submission_candidate(sid)\n' +
      "services.submission_progress(sid, state='smoke_testing', smoke_output='ok\\n')\n" +
      'services.submission_passed(sid)\n',
  );
}

before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'vibebox-ts-market-'));
});
after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('marketplace submissions', () => {
  test('a directory is submitted with its context, then listed, read and cancelled', async () => {
    const name = uniqueName('ts-sub');
    const sub = await vb.marketplace.submit(await templateDir(name));
    assert.ok(sub.id.startsWith('sub_'));
    assert.equal(sub.state, 'queued');
    assert.equal(sub.template, name);
    assert.ok(sub.contextBytes > 0);
    const names = await shell(
      'import tarfile, json\nfrom apps.marketplace.models import Submission\n' +
        `s = Submission.objects.get(pk=${JSON.stringify(sub.id)})\n` +
        'print(json.dumps(sorted(m.name for m in tarfile.open(s.context_path))))\n',
    );
    assert.deepEqual(JSON.parse(names), ['.dockerignore', 'README.md', 'src/app.py']);

    const got = await vb.marketplace.submission(sub);
    assert.equal(got.spec.name, name);
    assert.ok((await vb.marketplace.submissions({ state: 'queued' })).some((s) => s.id === sub.id));
    assert.equal((await vb.marketplace.cancel(sub.id)).state, 'cancelled');
    await assert.rejects(vb.marketplace.cancel(sub), SubmissionStateError);
    await assert.rejects(vb.marketplace.submission('sub_nope'), SubmissionNotFoundError);
  });

  test('parts, and refusals as error classes', async () => {
    const name = uniqueName('ts-parts');
    const yaml = `name: ${name}\nversion: "0.1.0"\ndescription: parts\nsmoke: "true"\n`;
    const sub = await vb.marketplace.submit({ dockerfile: 'FROM debian:trixie\n', templateYaml: yaml });
    assert.equal(sub.contextBytes, 0);
    await vb.marketplace.cancel(sub);
    const bad = await vb.marketplace
      .submit({ dockerfile: 'FROM debian:trixie\n', templateYaml: `name: ${name}\nversion: one\n` })
      .catch((error: unknown) => error);
    assert.ok(bad instanceof InvalidTemplateYamlError && bad instanceof ValidationError);
    assert.ok('version' in (bad.details.fields as Record<string, unknown>));
    await assert.rejects(
      vb.marketplace.submit({ dockerfile: 'FROM debian:trixie\n', templateYaml: yaml, context: new Uint8Array([1, 2, 3]) }),
      InvalidBuildContextError,
    );
    const dir = await templateDir(uniqueName('ts-big'));
    await fs.writeFile(path.join(dir, 'data.bin'), new Uint8Array(4096));
    const large = await vb.marketplace.submit(dir, { contextLimit: 1024 }).catch((error: unknown) => error);
    assert.ok(large instanceof BuildContextTooLargeError && large.status === undefined);
    assert.match(large.message, /data\.bin/);
    await fs.rm(path.join(dir, 'template.yaml'));
    const missing = await vb.marketplace.submit(dir).catch((error: unknown) => error);
    assert.ok(missing instanceof ValidationError);
    assert.deepEqual(missing.details, { missing: ['template.yaml'] });
  });

  test('wait follows the build log to a failure', async () => {
    const sub = await vb.marketplace.submit(await templateDir(uniqueName('ts-fail')));
    const seen: string[] = [];
    const waiting = vb.marketplace
      .wait(sub, { onLog: (text) => seen.push(text), interval: 200, timeout: 120_000, check: true })
      .catch((error: unknown) => error);
    const id = JSON.stringify(sub.id);
    await shell(`services.submission_start(${id})\nservices.submission_log_append(${id}, 'Step 1/2 : FROM debian\\n')\n`);
    await shell(`services.submission_log_append(${id}, 'Step 2/2 : COPY src /opt/app\\n')\n`);
    await shell(`services.submission_fail(${id}, step='smoke', message='smoke exited 1')\n`);
    const failed = await waiting;
    assert.ok(failed instanceof SubmissionFailedError);
    assert.equal(failed.submission.failedStep, 'smoke');
    assert.equal(seen.join(''), 'Step 1/2 : FROM debian\nStep 2/2 : COPY src /opt/app\n');
  });

  test('.dockerignore rules', () => {
    const rules = new IgnoreRules('# c\nnode_modules\n/dist/\n**/*.pyc\n*.md\n!README.md\n');
    assert.ok(rules.excluded('node_modules/a/b.js') && rules.excluded('dist/x') && rules.excluded('a/b/c.pyc'));
    assert.ok(rules.excluded('NOTES.md') && !rules.excluded('README.md') && !rules.excluded('docs/NOTES.md'));
    assert.ok(!rules.excluded('src/app.py'));
  });
});

describe('marketplace catalogue', () => {
  test('publish, search, show, rate after a use, yank, deprecate, feature', async () => {
    const base = await vb.template('python-3.13');
    assert.ok(base.image, "python-3.13's image is not built here");
    const name = uniqueName('ts-cat');
    const sub = await vb.marketplace.submit(await templateDir(name, '1.0.0', `vibebox/${base.name}`), {
      visibility: 'public',
    });
    await passPipeline(sub.id, base.image);
    assert.equal((await vb.marketplace.wait(sub, { timeout: 30_000 })).state, 'awaiting_review');
    const published = await vb.marketplace.review(sub, true, 'ok');
    assert.equal(published.state, 'published');

    const found = await vb.marketplace.templates({ q: name, official: false, sort: 'newest' });
    assert.deepEqual(found.map((t) => t.name), [name]);
    assert.ok((await vb.marketplace.templates({ tag: 'ts-test', language: 'python' })).some((t) => t.name === name));
    const detail = await vb.marketplace.template(name);
    assert.equal(detail.latestVersion, '1.0.0');
    assert.deepEqual(detail.versions.map((v) => v.version), ['1.0.0']);
    assert.match(detail.readme, new RegExp(`^# ${name}`));
    await assert.rejects(vb.marketplace.template(uniqueName('none')), TemplateNotFoundError);

    await assert.rejects(vb.marketplace.rate(name, 5), ReviewNotAllowedError);
    const box = await vb.create({ template: name, autoStart: false });
    cleanupLater(() => box.destroy());
    const review = await vb.marketplace.rate(name, 4, 'fine');
    assert.deepEqual([review.rating, review.text], [4, 'fine']);
    assert.deepEqual((await vb.marketplace.reviews(name)).map((r) => r.rating), [4]);
    assert.deepEqual((await vb.marketplace.template(name)).rating, { average: 4, count: 1 });

    const yanked = await vb.marketplace.yank(name, '1.0.0', 'broken');
    assert.ok(yanked.yanked);
    assert.equal(yanked.yankReason, 'broken');
    await assert.rejects(vb.create({ template: `${name}@1.0.0`, autoStart: false }), TemplateVersionYankedError);
    const deprecated = await vb.marketplace.deprecate(name, 'Old.', 'python-3.13');
    assert.deepEqual(deprecated.deprecation, { message: 'Old.', replacement: 'python-3.13' });
    const featured = await vb.marketplace.feature(name, true, -9);
    assert.ok(featured.featured);
    assert.equal((await vb.marketplace.templates({ featured: true }))[0]?.name, name);
    assert.equal((await vb.marketplace.feature(name, false)).featured, false);
  });
});
