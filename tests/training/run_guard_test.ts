/**
 * A finished run is never overwritten: refused unless continued or replaced on purpose; a lock
 * refuses a second live writer and is taken over from a dead one.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import {
  guardRunDir,
  LOCK_FILE,
  RunExistsError,
  runFilesIn,
  RunLockedError,
} from "../../training/run_guard.ts";

async function listing(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("an --out that holds a run is refused with nothing touched", async () => {
  const out = await Deno.makeTempDir();
  await Deno.writeTextFile(join(out, "train_summary.json"), "{}");
  await Deno.writeTextFile(join(out, "notes.txt"), "mine");
  await Deno.mkdir(join(out, "checkpoint-4"));
  deepEqual(await runFilesIn(out), ["checkpoint-4", "train_summary.json"]);
  await rejects(guardRunDir(out), (e: Error) => {
    ok(e instanceof RunExistsError);
    match(e.message, /--out .* already holds a run \(checkpoint-4, train_summary\.json\)/);
    match(e.message, /--resume .* --overwrite/);
    return true;
  });
  deepEqual(await listing(out), ["checkpoint-4", "notes.txt", "train_summary.json"]);

  // Continuing keeps everything; the lock exists while held and goes on release.
  const lock = await guardRunDir(out, { continues: true });
  deepEqual(await listing(out), [LOCK_FILE, "checkpoint-4", "notes.txt", "train_summary.json"]);
  await lock.release();
  deepEqual(await listing(out), ["checkpoint-4", "notes.txt", "train_summary.json"]);

  // Overwrite removes the run's files only.
  const lock2 = await guardRunDir(out, { overwrite: true });
  deepEqual(lock2.replaced, ["checkpoint-4", "train_summary.json"]);
  await lock2.release();
  deepEqual(await listing(out), ["notes.txt"]);
  await Deno.remove(out, { recursive: true });
});

Deno.test("an empty or new --out is fine; a failed run leaves no empty folder", async () => {
  const dir = await Deno.makeTempDir();
  const out = join(dir, "new-run");
  const lock = await guardRunDir(out);
  ok((await Deno.stat(join(out, LOCK_FILE))).isFile);
  await lock.release();
  await Deno.stat(out).then(() => ok(false, "empty folder left"), () => {});
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a live writer's lock refuses; a dead writer's lock is taken over", async () => {
  const out = await Deno.makeTempDir();
  const lockPath = join(out, LOCK_FILE);
  const live = await guardRunDir(out);
  await rejects(guardRunDir(out, { continues: true }), (e: Error) => {
    ok(e instanceof RunLockedError);
    match(e.message, new RegExp(`being written by process ${Deno.pid}`));
    return true;
  });
  await live.release();

  // A process that has exited (as after SIGKILL) left its lock behind.
  const child = new Deno.Command("sleep", { args: ["0"] }).spawn();
  const deadPid = child.pid;
  await child.status;
  await Deno.writeTextFile(lockPath, JSON.stringify({ pid: deadPid, token: "old" }));
  const taken = await guardRunDir(out, { continues: true });
  equal(JSON.parse(await Deno.readTextFile(lockPath)).pid, Deno.pid);
  await taken.release();
  await Deno.stat(lockPath).then(() => ok(false, "lock left"), () => {});
  await Deno.remove(out, { recursive: true });
});
