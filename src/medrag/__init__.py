"""medrag: question answering with citations over Chinese medical documents."""

__version__ = "0.1.0"
