from thread_chunks import chunk


def f(x, y):
    return x + y


outputs = chunk(f, [[1, 4], [2, 5], [3, 6]], chunk_size=2, path="checkpoint.pkl")
print(outputs)  # [5, 7, 9]; run it again: nothing is recomputed
