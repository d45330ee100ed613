from thread_chunks import chunk


def f(x, y):
    return x + y


outputs = chunk(f, [[1, 4], [2, 5], [3, 6]], chunk_size=2, progress_bar=False)
print(outputs)
