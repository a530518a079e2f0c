from glcf_cli import main

main()
