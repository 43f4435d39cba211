"""`mixtral-load`: a load tester for any OpenAI-compatible server.

Closed-loop concurrency sweeps or open-loop Poisson arrival rates, synthetic prompts of exact token
lengths or a JSONL of conversations, per-request records and a JSON summary (throughput, TTFT / ITL
/ TPOT / end-to-end percentiles, errors by kind), optional PNG plots and an SLO search.

Needs only httpx (and transformers for synthetic prompts): the progress bar (tqdm) and the plots
(matplotlib) are used when installed, so the tester also runs on a bare GPU host. The metrics follow
`vllm bench serve`'s definitions, so the two can be compared on the same load.
"""
