# In an async app, stop a run on SIGTERM the way chunk() does: no new call
# starts, running calls finish and are saved, then the app goes on shutting down.
import signal

import anyio

from thread_chunks import achunk


def square(x):
    return x * x


async def main():
    async with anyio.create_task_group() as task_group:

        async def stop_on_sigterm():
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    task_group.cancel_scope.cancel()

        task_group.start_soon(stop_on_sigterm)
        parameters = [[x] for x in range(5)]
        print(await achunk(square, parameters, path="app.pkl", progress_bar=False))
        task_group.cancel_scope.cancel()  # done: stop listening


anyio.run(main)
