"""Static files of the browser demo, served by the server at `/`."""
