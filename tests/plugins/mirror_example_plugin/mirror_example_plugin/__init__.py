"""An example mirror plug-in, one of each kind that has a config table and a command:

- ``blobs.plugin``, the blob store ``example`` (group ``mirror.blob_stores``): archives as files
  under ``[plugins.example] root``; chosen with ``[blobs] backend = "example"``;
- ``sink.plugin``, the event sink ``example_events`` (group ``mirror.event_sinks``): every event
  as a JSON line appended to ``[plugins.example_events] path``; runs when that table is present;
- ``cli.add_command``, the command ``mirror example-blobs`` (group ``mirror.cli_commands``):
  how many archives the example store holds.
"""
