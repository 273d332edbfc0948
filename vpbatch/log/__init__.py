"""The log: takes finished jobs, gives the append-only record of a run and its run dir.

`records` defines the Record (one JSONL line) and the job id; `reader` is the one way to read
a log (complete lines only, every bad line decided in one place); `counts` says which line
counts for a job logged more than once; `runlog` appends lines (the commit point), repairs a
torn tail and knows which jobs are done; `rundir` holds the config a
run belongs to; `importer` turns the authors' recorded outputs into records; `merge` joins the
logs of shards.
"""
