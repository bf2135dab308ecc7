@echo off
rem identify-pkcs11 for Windows: copies the module and the tool to
rem %ProgramFiles%\identify-pkcs11 and the example configuration to
rem %ProgramData%\identify-pkcs11\config.toml unless one is there (yours is kept).
rem Run it from an administrator's command prompt in the unpacked zip's folder.
rem Exit code 0 when everything was copied, 1 (with the reason) otherwise.
setlocal
set "HERE=%~dp0"
set "DEST=%ProgramFiles%\identify-pkcs11"
set "CONF=%ProgramData%\identify-pkcs11"
for %%f in (identify_pkcs11.dll identify-pkcs11.exe config.example.toml) do (
    if not exist "%HERE%%%f" (
        echo install.cmd: %%f is not beside this script: run it in the unpacked zip's folder
        exit /b 1
    )
)
if not exist "%DEST%" mkdir "%DEST%"
if not exist "%DEST%" (
    echo install.cmd: cannot create %DEST%: run it as an administrator
    exit /b 1
)
copy /y "%HERE%identify_pkcs11.dll" "%DEST%\identify_pkcs11.dll" >nul
if errorlevel 1 (
    echo install.cmd: cannot write %DEST%\identify_pkcs11.dll: is a program using it? run it as an administrator
    exit /b 1
)
copy /y "%HERE%identify-pkcs11.exe" "%DEST%\identify-pkcs11.exe" >nul
if errorlevel 1 (
    echo install.cmd: cannot write %DEST%\identify-pkcs11.exe
    exit /b 1
)
if not exist "%CONF%" mkdir "%CONF%"
if exist "%CONF%\config.toml" (
    echo kept the existing %CONF%\config.toml
) else (
    copy "%HERE%config.example.toml" "%CONF%\config.toml" >nul
    if errorlevel 1 (
        echo install.cmd: cannot write %CONF%\config.toml
        exit /b 1
    )
    echo wrote %CONF%\config.toml from the example: edit it
)
echo installed %DEST%\identify_pkcs11.dll and %DEST%\identify-pkcs11.exe
echo check with: "%DEST%\identify-pkcs11.exe" doctor
exit /b 0
