// A store command's time budget, counted from when the command was written to the socket to the
// first moment the gateway could read its answer: not from when a busy event loop got round to
// a timer.
//
// A timer alone measures the wrong thing. While the event loop is busy (a burst of TLS
// handshakes, a long GC pause: 60-158 ms were seen during a 50-connection burst), an answer Redis
// sent within a millisecond waits in the socket buffer, and the expired timer runs in the timers
// phase of the next loop turn, before the poll phase that would read that answer: a healthy Redis
// is declared too slow, and the request is refused (or admitted unlimited) while the script has
// run. So the timer only asks for a verdict and the verdict is given from setImmediate: the poll
// phase runs in between and settles every command whose answer is already there. What is still
// unanswered then has had its whole budget.
//
// On Redis Cluster one call may be redirected (MOVED after a failover or resharding, ASK during a
// slot migration) or retried by ioredis while a failed master's slots move to its replica: the
// budget covers all of it, from the first send to the final answer, and whoever gives up on a
// call can still take back what its late answer counted.

/** Its message is ioredis's own for a command past commandTimeout, which logs and checks already know. */
export class CommandTimeoutError extends Error {
  constructor() {
    super('Command timed out');
    this.name = 'CommandTimeoutError';
  }
}

/**
 * Settles like `sent`, or rejects with CommandTimeoutError once `budgetMs` have passed and the
 * event loop has read what had arrived by then. `sent` is never abandoned: whoever gave up on it
 * can still look at how it ended (and undo what it did).
 */
export function withinBudget<T>(sent: Promise<T>, budgetMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let decided = false;
    const timer = setTimeout(() => {
      setImmediate(() => {
        if (decided) return;
        decided = true;
        reject(new CommandTimeoutError());
      });
    }, budgetMs);
    sent.then(
      (answer) => {
        if (decided) return;
        decided = true;
        clearTimeout(timer);
        resolve(answer);
      },
      (err: unknown) => {
        if (decided) return;
        decided = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
