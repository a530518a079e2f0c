from glcf_runtime.cli import main

main()
