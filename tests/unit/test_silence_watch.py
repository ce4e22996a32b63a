"""SilenceWatch: a ping interrupt after silence, never swallowing someone else's cancel."""

from __future__ import annotations

import asyncio
from unittest import mock

import aiohttp
import pytest

from ccgate.server.translated import SilenceWatch


def reader() -> aiohttp.StreamReader:
    protocol = mock.Mock(_reading_paused=False)
    return aiohttp.StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())


async def test_silence_gives_none_then_data_flows() -> None:
    content = reader()
    watch = SilenceWatch(0.01)
    try:
        assert await watch.read(content.readany) is None  # silent: a ping is due
        assert await watch.read(content.readany) is None  # and again, one per interval
        asyncio.get_running_loop().call_soon(content.feed_data, b"data: 1\n\n")
        assert await watch.read(content.readany) == b"data: 1\n\n"
        content.feed_eof()
        assert await watch.read(content.readany) == b""
    finally:
        watch.close()


async def test_data_before_the_interval_gives_no_interrupt() -> None:
    content = reader()
    watch = SilenceWatch(3600)
    try:
        for i in range(50):
            asyncio.get_running_loop().call_soon(content.feed_data, b"x%d" % i)
            assert await watch.read(content.readany) == b"x%d" % i
    finally:
        watch.close()


async def test_a_client_disconnect_cancel_propagates() -> None:
    content = reader()

    async def relay() -> None:
        watch = SilenceWatch(3600)
        try:
            await watch.read(content.readany)
        finally:
            watch.close()

    task = asyncio.create_task(relay())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outside_cancel_at_the_same_time_as_the_interrupt_still_propagates() -> None:
    content = reader()
    fired = asyncio.Event()

    async def relay() -> None:
        watch = SilenceWatch(0.01)
        original = watch._check

        def check_then_cancel_too() -> None:
            original()
            if watch._fired:  # the watch just cancelled the task: the client goes away as well
                task.cancel()
                fired.set()

        watch._handle.cancel()
        watch._handle = asyncio.get_running_loop().call_later(0.01, check_then_cancel_too)
        try:
            await watch.read(content.readany)
        finally:
            watch.close()

    task = asyncio.create_task(relay())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fired.is_set()
