from thread_chunks import chunk, progress


def inverse(x):
    return 1 / x


chunk(
    inverse,
    [[x] for x in (4, 2, 0, 1)],
    errors="return",
    path="run.pkl",
    progress_bar=False,
)
report = progress("run.pkl")  # reads the file only; a run may be writing it
print(report.function, report.done, report.total, report.failures, report.running)
print(report.first_failures)
