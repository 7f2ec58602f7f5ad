"""The one data loader of the commands: MNIST / Fashion-MNIST with the source announced in plain words."""
import warnings


def load_data(args, dataset="mnist", dtype="float32"):
    """``((train, test), source)`` from ``datasets.load`` with args.data_dir (and args.download / args.progress
    when the command has them); prints the source line instead of an EmbeddedDataWarning."""
    from .. import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.EmbeddedDataWarning)  # said below, in plain words
        try:
            train, test, source = datasets.load(dataset, args.data_dir, dtype=dtype,
                                                download=getattr(args, "download", False),
                                                progress=getattr(args, "progress", False), return_source=True)
        except datasets.DataNotFoundError as err:  # in the CLI's words, not the Python API's
            hint = "--download" if hasattr(args, "download") else None
            raise FileNotFoundError(err.message("pass --data-dir DIR", hint)) from None
    print(f"data: {source}")
    if source.kind == "embedded":
        print("      (full MNIST not found: pass --data-dir DIR, set $MINIGRAD_NETS_DATA, or use --download)")
    return (train, test), source
