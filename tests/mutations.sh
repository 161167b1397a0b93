#!/usr/bin/env bash
# The recovery paths' mutation check: apply each mutation to the ledger, loop and worker
# code, run the tests that guard it, print the first test that fails, restore the file.
# A line ending in "SURVIVED" is a mutation no test catches. Not part of CI (about 75 s):
#     tests/mutations.sh
set -u
cd "$(dirname "$0")/.."
T="tests/test_store_contract.py tests/test_retries.py tests/test_worker_handler.py tests/test_recovery.py tests/test_loop_shape.py"
backup=$(mktemp)
trap 'rm -f "$backup"' EXIT
run() {  # name, file, command
  name=$1; file=$2; shift 2
  cp "$file" "$backup"
  eval "$@"
  if cmp -s "$file" "$backup"; then echo "$name: MUTATION NOT APPLIED"; return; fi
  out=$(.venv/bin/pytest -q -p no:cacheprovider -x $T 2>&1 | grep -E "^FAILED" | head -1)
  cp "$backup" "$file"
  echo "$name: ${out:-SURVIVED}"
}
run M1-memory agent_runtime/adapters/memory.py "perl -0pi -e 's/(record.journal = journal.model_copy\(deep=True\)\n)\s+record.lease_until = now \+ lease_seconds\n/\$1/' agent_runtime/adapters/memory.py"
run M1-dynamodb agent_runtime/adapters/aws/dynamodb_attempts.py "sed -i 's/\"SET #journal = :journal, lease_until = :lease\"/\"SET #journal = :journal, lease_until = if_not_exists(lease_until, :lease)\"/' agent_runtime/adapters/aws/dynamodb_attempts.py"
run M2-no-yield agent_runtime/loop/attempt.py "perl -0pi -e 's/if now >= self.invocation_deadline:\n            return Yield\(\)/if now >= self.invocation_deadline:\n            return None/' agent_runtime/loop/attempt.py"
run M3-yield-spends agent_runtime/loop/attempt.py "sed -i 's/self.fence, now=self.clock(), resume=True, not_before=None/self.fence, now=self.clock(), resume=False, not_before=None/' agent_runtime/loop/attempt.py"
run M4-no-continuation functions/worker.py "sed -i 's/^        run(rt.continue_later(.*/        pass/' functions/worker.py"
run M5-no-cap agent_runtime/worker.py "sed -i 's/if record.attempts > budget.max_attempts:/if False:/' agent_runtime/worker.py"
run M6-no-backoff agent_runtime/worker.py "sed -i 's/resume=False, not_before=not_before, error=error/resume=False, not_before=None, error=error/' agent_runtime/worker.py"
run M7-memory agent_runtime/adapters/memory.py "perl -0pi -e 's/self.table.fenced\(fence, honour_abort=False\)(\n\s+if journal is not None)/self.table.fenced(fence, honour_abort=True)\$1/' agent_runtime/adapters/memory.py"
run M7-dynamodb agent_runtime/adapters/aws/dynamodb_attempts.py "perl -0pi -e 's/_fence_condition\(fence, honour_abort=False\)(\n\s+sets = \[\"#status = :queued\")/_fence_condition(fence, honour_abort=True)\$1/' agent_runtime/adapters/aws/dynamodb_attempts.py"
run M8-race-guard agent_runtime/adapters/aws/dynamodb_attempts.py "perl -0pi -e 's/ConditionExpression=\"next_seq = :next\",\n\s+ExpressionAttributeValues=\{\":next\": _n\(next_seq\)\},/ConditionExpression=\"next_seq = next_seq\",/' agent_runtime/adapters/aws/dynamodb_attempts.py"
run F1-memory-lease-equal agent_runtime/adapters/memory.py "sed -i 's/record.status is Status.running and (record.lease_until or 0) >= now:/record.status is Status.running and (record.lease_until or 0) > now:/' agent_runtime/adapters/memory.py"
run H1-handback-forgotten agent_runtime/loop/attempt.py "sed -i 's/handed_back=recovering and j.handed_back)/handed_back=False)/' agent_runtime/loop/attempt.py"
run H2-cut-model-call-fails agent_runtime/loop/attempt.py "perl -0pi -e 's/            if invocation_bound:\n                raise _OutOfTime\(Yield\(\)\) from None\n//' agent_runtime/loop/attempt.py"
run S1-suspend-spends-memory agent_runtime/adapters/memory.py "perl -0pi -e 's/(record.lease_until = None\n)\s+record.yields \+= 1\n/\$1/' agent_runtime/adapters/memory.py"
run S1-suspend-spends-dynamodb agent_runtime/adapters/aws/dynamodb_attempts.py "perl -0pi -e 's/\":one\": _n\(1\),(\n\s+\},)/\":one\": _n(0),\$1/' agent_runtime/adapters/aws/dynamodb_attempts.py"
run S2-resume-any-reason agent_runtime/adapters/memory.py "sed -i 's/ or record.waiting_on != reason:/:/' agent_runtime/adapters/memory.py"
git status --short -- agent_runtime functions
